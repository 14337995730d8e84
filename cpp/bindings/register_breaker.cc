// The circuit breaker, bound for Python.
//
// The hot methods (call, _allow, _record) are raw METH_FASTCALL methods rather than pybind11
// methods: a Python exception raised by the guarded function then stays on CPython's error path
// (about 0.3 us) instead of crossing C++ as a thrown exception (about 3-6 us), and a rejection is
// raised without a C++ throw. Everything else uses ordinary pybind11 definitions.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <utility>

#include "common.h"
#include "rlab/core/clock.h"
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

// The Python-facing breaker: the policy plus its clock, name and exception classification.
struct PyBreaker {
  std::unique_ptr<CircuitBreaker> breaker;
  std::shared_ptr<Clock> clock;
  py::str name;
  py::object ignored;  // tuple of exception types counted as neither success nor failure
  py::object open_error;
  py::object half_open_full_error;
};

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
void RecordPreservingError(PyBreaker* b, uint64_t token, CallResult result, int64_t start_ns) {
  const int64_t end_ns = b->clock->NowNs();
  if (PyErr_Occurred() == nullptr) {
    b->breaker->Record(token, result, end_ns, end_ns - start_ns);
    return;
  }
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  b->breaker->Record(token, result, end_ns, end_ns - start_ns);
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
  CallResult outcome = CallResult::kSuccess;
  if (result == nullptr) {
    outcome =
        PyErr_ExceptionMatches(b->ignored.ptr()) ? CallResult::kIgnored : CallResult::kFailure;
  }
  RecordPreservingError(b, permit.token, outcome, start_ns);
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

PyMethodDef kRawMethods[] = {
    {"call", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&BreakerCall)),
     METH_FASTCALL | METH_KEYWORDS,
     "call(fn, /, *args, **kwargs)\n--\n\nRuns fn through the breaker: raises BreakerOpen or "
     "BreakerHalfOpenFull without calling it when rejected; records its outcome otherwise (an "
     "exception is a failure unless its type is ignored) and returns or re-raises."},
    {"_allow", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&BreakerAllow)),
     METH_FASTCALL, "Admits one call: returns (token, start_ns) or raises the rejection."},
    {"_record", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&BreakerRecord)),
     METH_FASTCALL, "Records an admitted call: _record(token, result, start_ns)."},
    {nullptr, nullptr, 0, nullptr},
};

WindowKind ParseWindow(const std::string& window) {
  if (window == "count") return WindowKind::kCount;
  if (window == "time") return WindowKind::kTime;
  throw py::value_error("window must be 'count' or 'time', got '" + window + "'");
}

double CheckedSeconds(const char* name, double seconds, bool allow_zero) {
  ThrowIfError(CheckDuration(name, seconds, allow_zero));
  return seconds;
}

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
  cls.def(py::init([](std::shared_ptr<Clock> clock, std::string name, int consecutive_failures,
                      double failure_rate_threshold, double slow_call_rate_threshold,
                      double slow_call_duration, const std::string& window, int window_size,
                      double window_duration, int window_buckets, int minimum_calls,
                      double open_for, double open_growth, double max_open_for,
                      int half_open_max_calls, int success_threshold, py::object ignored) {
            if (!clock) throw py::value_error("clock must be a Clock, got None");
            BreakerConfig c;
            c.consecutive_failures = consecutive_failures;
            c.failure_rate_threshold = failure_rate_threshold;
            c.slow_call_rate_threshold = slow_call_rate_threshold;
            c.slow_call_duration_ns =
                SecondsToNs(CheckedSeconds("slow_call_duration", slow_call_duration, true));
            c.window = ParseWindow(window);
            c.window_size = window_size;
            c.window_ns = SecondsToNs(CheckedSeconds("window_duration", window_duration, false));
            c.window_buckets = window_buckets;
            c.minimum_calls = minimum_calls;
            c.open_for_ns = SecondsToNs(CheckedSeconds("open_for", open_for, false));
            c.open_growth = open_growth;
            c.max_open_for_ns = SecondsToNs(CheckedSeconds("max_open_for", max_open_for, true));
            c.half_open_max_calls = half_open_max_calls;
            c.success_threshold = success_threshold;
            auto* b = new PyBreaker();
            b->breaker = ValueOrThrow(CircuitBreaker::Create(c));
            b->clock = std::move(clock);
            b->name = py::str(name);
            b->ignored = py::tuple(std::move(ignored));
            py::module_ errors = py::module_::import("reliability_lab.errors");
            b->open_error = errors.attr("BreakerOpen");
            b->half_open_full_error = errors.attr("BreakerHalfOpenFull");
            return b;
          }),
          py::arg("clock"), py::arg("name"), py::arg("consecutive_failures"),
          py::arg("failure_rate_threshold"), py::arg("slow_call_rate_threshold"),
          py::arg("slow_call_duration"), py::arg("window"), py::arg("window_size"),
          py::arg("window_duration"), py::arg("window_buckets"), py::arg("minimum_calls"),
          py::arg("open_for"), py::arg("open_growth"), py::arg("max_open_for"),
          py::arg("half_open_max_calls"), py::arg("success_threshold"), py::arg("ignored"))
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

  auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  for (PyMethodDef* def = kRawMethods; def->ml_name != nullptr; ++def) {
    PyObject* descr = PyDescr_NewMethod(type, def);
    if (descr == nullptr) throw py::error_already_set();
    cls.attr(def->ml_name) = py::reinterpret_steal<py::object>(descr);
  }
}

}  // namespace rlab::bindings
