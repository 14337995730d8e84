// The circuit breaker, bound for Python.
//
// The hot methods (call, _allow, _record) are raw METH_FASTCALL methods rather than pybind11
// methods: a Python exception raised by the guarded function then stays on CPython's error path
// (about 0.3 us) instead of crossing C++ as a thrown exception (about 3-6 us), and a rejection is
// raised without a C++ throw. Everything else uses ordinary pybind11 definitions.
//
// This file also maps Python exceptions to outcomes (OutcomeOfException): the breaker, the Python
// retry and the tests all use that one mapping, and the one table in core/outcome.h on top of it.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common.h"
#include "config_codec.h"
#include "rlab/core/clock.h"
#include "rlab/core/outcome.h"
#include "rlab/core/validate.h"
#include "rlab/policy/circuit_breaker.h"

namespace rlab::bindings {
namespace {

// A Python callback that is safe to copy and destroy from any thread: the last owner takes the GIL
// before dropping the reference.
struct PyCallback {
  explicit PyCallback(py::object f) : fn(std::move(f)) {}
  ~PyCallback() {
    if (!Py_IsInitialized()) {
      fn.release();  // the interpreter is gone: leak rather than crash
      return;
    }
    py::gil_scoped_acquire gil;
    fn = py::object();
  }
  py::object fn;
};

// The exception types the mapping needs: the lab's own (created natively, see
// register_errors.cc) and the interned attribute names it looks up. Resolved on first use and
// kept for the interpreter's lifetime (leaked on purpose: destroying Python objects after
// finalization would crash).
struct ExceptionTypes {
  PyObject* breaker_open;
  PyObject* half_open_full;
  PyObject* bulkhead_full;
  PyObject* rejected;
  PyObject* deadline;
  PyObject* cancelled;   // tuple
  PyObject* timeouts;    // tuple
  PyObject* connection;  // ConnectionError
  PyObject* status_code;
  PyObject* status;
  PyObject* response;
};

const ExceptionTypes* g_types = nullptr;

const ExceptionTypes& TypesOrThrow() {
  if (g_types != nullptr) return *g_types;
  auto intern = [](const char* name) {
    PyObject* s = PyUnicode_InternFromString(name);
    if (s == nullptr) throw py::error_already_set();
    return s;
  };
  const ErrorTypes& e = Errors();
  g_types = new ExceptionTypes{
      e.breaker_open,        e.breaker_half_open_full, e.bulkhead_full,    e.rejected,
      e.deadline_exceeded,   e.cancelled_types,        e.timeout_types,    PyExc_ConnectionError,
      intern("status_code"), intern("status"),         intern("response"),
  };
  return *g_types;
}

bool IsSubtype(PyTypeObject* type, PyObject* cls) {
  return PyType_IsSubtype(type, reinterpret_cast<PyTypeObject*>(cls)) != 0;
}

bool IsSubtypeOfAny(PyTypeObject* type, PyObject* tuple) {
  const Py_ssize_t n = PyTuple_GET_SIZE(tuple);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* cls = PyTuple_GET_ITEM(tuple, i);
    if (PyType_Check(cls) && IsSubtype(type, cls)) return true;
  }
  return false;
}

// obj.name, or nullptr if it is missing or its lookup raised (the error is cleared).
PyObject* OptionalAttr(PyObject* obj, PyObject* name) {
  PyObject* value = nullptr;
#if PY_VERSION_HEX >= 0x030D0000
  if (PyObject_GetOptionalAttr(obj, name, &value) < 0) PyErr_Clear();
#else
  if (_PyObject_LookupAttr(obj, name, &value) < 0) PyErr_Clear();
#endif
  return value;
}

// An HTTP error status in [300, 599] carried as `status_code` or `status` on `obj`, or 0. An
// int subclass (http.HTTPStatus) counts; bool does not.
int StatusOf(PyObject* obj, const ExceptionTypes& t) {
  for (PyObject* name : {t.status_code, t.status}) {
    PyObject* value = OptionalAttr(obj, name);
    if (value == nullptr) continue;
    long status = 0;
    if (PyLong_Check(value) && !PyBool_Check(value)) {
      status = PyLong_AsLong(value);
      if (status == -1 && PyErr_Occurred() != nullptr) PyErr_Clear();
    }
    Py_DECREF(value);
    // 1xx/2xx on an exception is not a success: only error statuses count.
    if (status >= 300 && status <= 599) return static_cast<int>(status);
  }
  return 0;
}

// The classification of the last plain exception type (one that maps to `error` and cannot carry
// a status except through its instance dict), so that a dependency raising the same exception
// again costs two compares instead of a dozen subtype checks and three attribute lookups. Keyed
// on the type's version tag, which changes whenever the type (or a base) is modified and is
// never reused by another type. Only touched with the GIL held.
struct PlainTypeCache {
  PyTypeObject* type = nullptr;
  unsigned int version = 0;
};
PlainTypeCache g_plain_cache;

bool ValidVersionTag(PyTypeObject* type) {
#ifdef Py_TPFLAGS_VALID_VERSION_TAG
  if (!PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG)) return false;
#endif
  return type->tp_version_tag != 0;
}

bool CachedPlain(PyTypeObject* type) {
  return type == g_plain_cache.type && type->tp_version_tag == g_plain_cache.version &&
         ValidVersionTag(type);
}

// No instance attributes at all: a status can only come from the instance dict.
bool HasNoInstanceAttributes(PyObject* value) {
  PyObject* dict = reinterpret_cast<PyBaseExceptionObject*>(value)->dict;
  return dict == nullptr || PyDict_GET_SIZE(dict) == 0;
}

Outcome OutcomeOfExceptionUncached(PyTypeObject* type, PyObject* value, const ExceptionTypes& t);

// The outcome a raised exception stands for: the one mapping from exceptions to outcomes. `value`
// may be null or unnormalized (then only its type is looked at). Never leaves an error set.
//   Rejected subclasses         -> the local rejection kind
//   CANCELLED_TYPES             -> cancelled
//   DeadlineExceeded            -> deadline_exceeded
//   TIMEOUT_TYPES               -> timeout
//   ConnectionError             -> connection_reset
//   status_code / status in [300, 599], on the exception or on its `response` -> that status
//   anything else               -> error
Outcome OutcomeOfException(PyTypeObject* type, PyObject* value, const ExceptionTypes& t) {
  const bool instance = value != nullptr && PyExceptionInstance_Check(value);
  if (instance && CachedPlain(type) && HasNoInstanceAttributes(value)) {
    return Outcome::Of(OutcomeKind::kError);
  }
  const Outcome o = OutcomeOfExceptionUncached(type, value, t);
  if (o.kind == OutcomeKind::kError && instance && type->tp_getattro == PyObject_GenericGetAttr &&
      ValidVersionTag(type)) {
    // Cacheable only if the type itself (class attributes, properties, slots) has none of the
    // status attributes; a __getattr__ override rules caching out above.
    bool type_has_status = false;
    for (PyObject* name : {t.status_code, t.status, t.response}) {
      PyObject* attr = OptionalAttr(reinterpret_cast<PyObject*>(type), name);
      if (attr != nullptr) {
        type_has_status = true;
        Py_DECREF(attr);
      }
    }
    if (!type_has_status) g_plain_cache = {type, type->tp_version_tag};
  }
  return o;
}

Outcome OutcomeOfExceptionUncached(PyTypeObject* type, PyObject* value, const ExceptionTypes& t) {
  if (IsSubtype(type, t.rejected)) {
    if (IsSubtype(type, t.breaker_open)) return Outcome::Of(OutcomeKind::kBreakerOpen);
    if (IsSubtype(type, t.half_open_full)) return Outcome::Of(OutcomeKind::kBreakerHalfOpenFull);
    if (IsSubtype(type, t.bulkhead_full)) return Outcome::Of(OutcomeKind::kBulkheadFull);
    return Outcome::Of(OutcomeKind::kThrottled);
  }
  if (IsSubtypeOfAny(type, t.cancelled)) return Outcome::Of(OutcomeKind::kCancelled);
  if (IsSubtype(type, t.deadline)) return Outcome::Of(OutcomeKind::kDeadlineExceeded);
  if (IsSubtypeOfAny(type, t.timeouts)) return Outcome::Of(OutcomeKind::kTimeout);
  if (IsSubtype(type, t.connection)) return Outcome::Of(OutcomeKind::kConnectionReset);
  if (value != nullptr && PyExceptionInstance_Check(value)) {
    int status = StatusOf(value, t);
    if (status == 0) {
      PyObject* response = OptionalAttr(value, t.response);
      if (response != nullptr) {
        if (response != Py_None) status = StatusOf(response, t);
        Py_DECREF(response);
      }
    }
    if (status != 0) return Outcome::Http(status);
  }
  return Outcome::Of(OutcomeKind::kError);
}

// The Python-facing breaker: the policy plus its clock, name and exception classification.
struct PyBreaker {
  std::unique_ptr<CircuitBreaker> breaker;
  std::shared_ptr<Clock> clock;
  py::str name;
  py::object excluded;  // tuple of user types counted as neither success nor failure
  bool has_excluded = false;
  py::object open_error;
  py::object half_open_full_error;
};

// What the breaker counts for an exception: the user's exclusions first, then the table.
CallResult ResultOfException(const PyBreaker* b, PyObject* type, PyObject* value) {
  if (b->has_excluded && PyErr_GivenExceptionMatches(type, b->excluded.ptr()) != 0) {
    return CallResult::kIgnored;
  }
  if (!PyType_Check(type)) return CallResult::kFailure;
  return BreakerResultOf(
      OutcomeOfException(reinterpret_cast<PyTypeObject*>(type), value, *g_types));
}

PyBreaker* Self(PyObject* self) {
  auto* inst = reinterpret_cast<py::detail::instance*>(self);
  void* v = inst->simple_layout ? inst->simple_value_holder[0]
                                : py::detail::values_and_holders(inst).begin()->value_ptr();
  if (v == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "CircuitBreaker.__init__ was not called");
    return nullptr;
  }
  return static_cast<PyBreaker*>(v);
}

// Sets the rejection exception (BreakerOpen or BreakerHalfOpenFull) without running a Python
// __init__: the instance is made by the type's tp_new, which stores `args`.
void SetRejection(PyBreaker* b, const BreakerPermit& permit) {
  PyObject* type;
  PyObject* args;
  if (permit.rejection == OutcomeKind::kBreakerOpen) {
    type = b->open_error.ptr();
    PyObject* retry_in = PyFloat_FromDouble(NsToSeconds(permit.retry_in_ns));
    if (retry_in == nullptr) return;
    args = PyTuple_Pack(2, b->name.ptr(), retry_in);
    Py_DECREF(retry_in);
  } else {
    type = b->half_open_full_error.ptr();
    PyObject* max_calls = PyLong_FromLong(b->breaker->config().half_open_max_calls);
    if (max_calls == nullptr) return;
    args = PyTuple_Pack(2, b->name.ptr(), max_calls);
    Py_DECREF(max_calls);
  }
  if (args == nullptr) return;
  PyObject* exc = reinterpret_cast<PyTypeObject*>(type)->tp_new(
      reinterpret_cast<PyTypeObject*>(type), args, nullptr);
  Py_DECREF(args);
  if (exc == nullptr) return;
  PyErr_SetObject(type, exc);
  Py_DECREF(exc);
}

// Records with any pending Python exception set aside, because Record may run Python listeners.
// A pending exception is classified (unless `result` is given) before it is set aside.
void RecordPreservingError(PyBreaker* b, uint64_t token, std::optional<CallResult> result,
                           int64_t start_ns) {
  const int64_t end_ns = b->clock->NowNs();
  if (PyErr_Occurred() == nullptr) {
    // No result and no exception: a callable that returned NULL without setting one (CPython then
    // raises SystemError), so a failure.
    b->breaker->Record(token, result.value_or(CallResult::kFailure), end_ns, end_ns - start_ns);
    return;
  }
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (!result.has_value()) result = ResultOfException(b, type, value);
  b->breaker->Record(token, *result, end_ns, end_ns - start_ns);
  PyErr_Restore(type, value, tb);
}

// breaker.call(fn, *args, **kwargs): runs fn through the breaker.
PyObject* BreakerCall(PyObject* self, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  PyBreaker* b = Self(self);
  if (b == nullptr) return nullptr;
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "call() missing the function to call");
    return nullptr;
  }
  const int64_t start_ns = b->clock->NowNs();
  const BreakerPermit permit = b->breaker->Allow(start_ns);
  if (!permit.admitted) {
    SetRejection(b, permit);
    return nullptr;
  }
  PyObject* result = PyObject_Vectorcall(args[0], args + 1, nargs - 1, kwnames);
  if (result == nullptr) {
    RecordPreservingError(b, permit.token, std::nullopt, start_ns);  // classifies the exception
  } else {
    RecordPreservingError(b, permit.token, CallResult::kSuccess, start_ns);
  }
  return result;
}

// breaker._allow() -> (token, start_ns): admits one call or raises the rejection.
PyObject* BreakerAllow(PyObject* self, PyObject* const*, Py_ssize_t nargsf) {
  PyBreaker* b = Self(self);
  if (b == nullptr) return nullptr;
  if (PyVectorcall_NARGS(nargsf) != 0) {
    PyErr_SetString(PyExc_TypeError, "_allow() takes no arguments");
    return nullptr;
  }
  const int64_t start_ns = b->clock->NowNs();
  const BreakerPermit permit = b->breaker->Allow(start_ns);
  if (!permit.admitted) {
    SetRejection(b, permit);
    return nullptr;
  }
  return Py_BuildValue("(KL)", static_cast<unsigned long long>(permit.token),
                       static_cast<long long>(start_ns));
}

// breaker._record(token, result, start_ns): result 0 = success, 1 = failure, 2 = ignored.
PyObject* BreakerRecord(PyObject* self, PyObject* const* args, Py_ssize_t nargsf) {
  PyBreaker* b = Self(self);
  if (b == nullptr) return nullptr;
  if (PyVectorcall_NARGS(nargsf) != 3) {
    PyErr_SetString(PyExc_TypeError, "_record(token, result, start_ns)");
    return nullptr;
  }
  const unsigned long long token = PyLong_AsUnsignedLongLong(args[0]);
  const long result = PyLong_AsLong(args[1]);
  const long long start_ns = PyLong_AsLongLong(args[2]);
  if (PyErr_Occurred() != nullptr) return nullptr;
  if (result < 0 || result > 2) {
    PyErr_SetString(PyExc_ValueError, "result must be 0 (success), 1 (failure) or 2 (ignored)");
    return nullptr;
  }
  RecordPreservingError(b, token, static_cast<CallResult>(result), start_ns);
  Py_RETURN_NONE;
}

// breaker._result_of(exc) -> 0 (success), 1 (failure) or 2 (ignored): what the breaker counts
// for `exc` raised by a guarded call (the Permit context manager uses it).
PyObject* BreakerResultOfException(PyObject* self, PyObject* const* args, Py_ssize_t nargsf) {
  PyBreaker* b = Self(self);
  if (b == nullptr) return nullptr;
  if (PyVectorcall_NARGS(nargsf) != 1 || !PyExceptionInstance_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "_result_of(exc) takes one exception instance");
    return nullptr;
  }
  const CallResult r = ResultOfException(b, reinterpret_cast<PyObject*>(Py_TYPE(args[0])), args[0]);
  return PyLong_FromLong(static_cast<long>(r));
}

PyMethodDef kRawMethods[] = {
    {"call", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&BreakerCall)),
     METH_FASTCALL | METH_KEYWORDS,
     "call($self, fn, /, *args, **kwargs)\n--\n\nRuns fn through the breaker: raises BreakerOpen "
     "or "
     "BreakerHalfOpenFull without calling it when rejected; records its outcome otherwise (an "
     "exception counts by the outcome table unless its type is excluded) and returns or "
     "re-raises."},
    {"_allow", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&BreakerAllow)),
     METH_FASTCALL, "Admits one call: returns (token, start_ns) or raises the rejection."},
    {"_record", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&BreakerRecord)),
     METH_FASTCALL, "Records an admitted call: _record(token, result, start_ns)."},
    {"_result_of",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&BreakerResultOfException)),
     METH_FASTCALL, "What the breaker counts for an exception: 0 success, 1 failure, 2 ignored."},
    {nullptr, nullptr, 0, nullptr},
};

py::dict SnapshotDict(const BreakerSnapshot& s) {
  py::dict d;
  d["state"] = std::string(BreakerStateName(s.state));
  d["generation"] = s.generation;
  d["consecutive_failures"] = s.consecutive_failures;
  d["window_calls"] = s.window_calls;
  d["window_failures"] = s.window_failures;
  d["window_slow"] = s.window_slow;
  d["half_open_in_flight"] = s.half_open_in_flight;
  d["half_open_successes"] = s.half_open_successes;
  d["open_until"] = NsToSeconds(s.open_until_ns);
  d["trips_in_row"] = s.trips_in_row;
  d["admitted"] = s.admitted;
  d["rejected_open"] = s.rejected_open;
  d["rejected_half_open_full"] = s.rejected_half_open_full;
  d["successes"] = s.successes;
  d["failures"] = s.failures;
  d["ignored"] = s.ignored;
  d["stale"] = s.stale;
  d["slow"] = s.slow;
  d["transitions"] = s.transitions;
  return d;
}

// An outcome from a kind name and, for "http_status", a status in [100, 599].
Outcome OutcomeArg(const std::string& kind, int http_status) {
  const OutcomeKind k = ValueOrThrow(ParseOutcomeKind(kind));
  if (k != OutcomeKind::kHttpStatus) return Outcome::Of(k);
  ThrowIfError(CheckIntRange("http_status", http_status, 100, 599));
  return Outcome::Http(http_status);
}

BreakerState ParseState(const std::string& state) {
  if (state == "closed") return BreakerState::kClosed;
  if (state == "open") return BreakerState::kOpen;
  if (state == "half_open") return BreakerState::kHalfOpen;
  throw py::value_error("state must be 'closed', 'open' or 'half_open', got '" + state + "'");
}

}  // namespace

void RegisterBreaker(py::module_& m) {
  auto cls = py::class_<PyBreaker>(
      m, "CircuitBreaker", "A circuit breaker (native core; use reliability_lab.CircuitBreaker).");
  cls.def(py::init([](std::shared_ptr<Clock> clock, std::string name, py::dict config,
                      py::tuple excluded) {
            if (!clock) throw py::value_error("clock must be a Clock, got None");
            const BreakerConfig c = ReadConfig(config, "", BreakerSchema());
            auto* b = new PyBreaker();
            b->breaker = ValueOrThrow(CircuitBreaker::Create(c));
            b->clock = std::move(clock);
            b->name = py::str(name);
            b->has_excluded = !excluded.empty();
            b->excluded = std::move(excluded);
            const ExceptionTypes& types = TypesOrThrow();
            b->open_error = py::reinterpret_borrow<py::object>(types.breaker_open);
            b->half_open_full_error = py::reinterpret_borrow<py::object>(types.half_open_full);
            return b;
          }),
          py::arg("clock"), py::arg("name"), py::arg("config"), py::arg("excluded"))
      .def_property_readonly(
          "state",
          [](PyBreaker& b) {
            return std::string(BreakerStateName(b.breaker->State(b.clock->NowNs())));
          },
          "'closed', 'open' or 'half_open' now (an expired open period reads as half_open).")
      .def_property_readonly("name", [](PyBreaker& b) { return b.name; })
      .def_property_readonly("clock", [](PyBreaker& b) { return b.clock; })
      .def(
          "snapshot",
          [](PyBreaker& b) { return SnapshotDict(b.breaker->Snapshot(b.clock->NowNs())); },
          "State and counters as a dict.")
      .def(
          "force_state",
          [](PyBreaker& b, const std::string& state) {
            b.breaker->ForceState(ParseState(state), b.clock->NowNs());
          },
          py::arg("state"), "Forces a state; a new generation starts.")
      .def(
          "_set_listener",
          [](PyBreaker& b, py::object fn) {
            b.breaker->ClearListeners();
            if (fn.is_none()) return;
            auto cb = std::make_shared<PyCallback>(std::move(fn));
            b.breaker->AddListener([cb](const BreakerTransition& t) {
              py::gil_scoped_acquire gil;
              try {
                cb->fn(std::string(BreakerStateName(t.from)), std::string(BreakerStateName(t.to)),
                       NsToSeconds(t.at_ns), t.generation);
              } catch (py::error_already_set& e) {
                e.discard_as_unraisable("reliability_lab circuit breaker listener");
              }
            });
          },
          py::arg("fn"),
          "Sets the one native listener: fn(from, to, at, generation), run outside the lock.");

  m.def(
      "outcome_of_exception",
      [](py::object exc) {
        if (!PyExceptionInstance_Check(exc.ptr())) {
          throw py::type_error("outcome_of_exception takes an exception instance, got " +
                               py::repr(exc).cast<std::string>());
        }
        const Outcome o = OutcomeOfException(Py_TYPE(exc.ptr()), exc.ptr(), TypesOrThrow());
        return py::make_tuple(std::string(OutcomeKindName(o.kind)), o.http_status);
      },
      py::arg("exc"),
      "The outcome an exception stands for, as (kind name, HTTP status or 0): the one mapping "
      "the Python breaker and retry use.");
  m.def(
      "classify_outcome",
      [](const std::string& kind, int http_status) {
        return std::string(OutcomeClassName(ClassifyOutcome(OutcomeArg(kind, http_status))));
      },
      py::arg("kind"), py::arg("http_status") = 0,
      "The outcome table: 'success', 'dependency_fault', 'caller_fault', 'caller_gave_up' or "
      "'local_rejection'.");
  m.def(
      "breaker_result_of",
      [](const std::string& kind, int http_status) {
        switch (BreakerResultOf(OutcomeArg(kind, http_status))) {
          case CallResult::kSuccess:
            return "success";
          case CallResult::kFailure:
            return "failure";
          case CallResult::kIgnored:
            return "ignored";
        }
        return "failure";
      },
      py::arg("kind"), py::arg("http_status") = 0,
      "What the engines' breakers count for an outcome: 'success', 'failure' or 'ignored'.");

  auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  for (PyMethodDef* def = kRawMethods; def->ml_name != nullptr; ++def) {
    PyObject* descr = PyDescr_NewMethod(type, def);
    if (descr == nullptr) throw py::error_already_set();
    cls.attr(def->ml_name) = py::reinterpret_steal<py::object>(descr);
  }
}

}  // namespace rlab::bindings
