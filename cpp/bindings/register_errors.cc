// The lab's exception hierarchy, created natively so that the bindings raise them without
// importing the Python layer (reliability_lab.errors and reliability_lab.live re-export them).
//
// The classes keep the public names (their __module__ is the module users import them from, so
// tracebacks and pickles read as before) and the Python-level surface: constructors, read-only
// fields kept in `args` (a rejection raised on the hot path builds no message), `__str__`, and
// the `reason` class attribute of the retry errors. Pickling is BaseException's (type, args).
#include <pybind11/pybind11.h>

#include <initializer_list>

#include "common.h"

namespace rlab::bindings {
namespace {

ErrorTypes* g_errors = nullptr;

// --- fields read from `args` ------------------------------------------------------------------

enum class Conv { kStr, kFloat, kInt };
struct Field {
  Py_ssize_t index;
  Conv conv;
};

// self.args[index], converted as str(), float() or int() would.
PyObject* GetField(PyObject* self, void* closure) {
  const auto* f = static_cast<const Field*>(closure);
  PyObject* args = PyObject_GetAttrString(self, "args");
  if (args == nullptr) return nullptr;
  PyObject* item = PySequence_GetItem(args, f->index);
  Py_DECREF(args);
  if (item == nullptr) return nullptr;
  PyObject* out = f->conv == Conv::kStr     ? PyObject_Str(item)
                  : f->conv == Conv::kFloat ? PyNumber_Float(item)
                                            : PyNumber_Long(item);
  Py_DECREF(item);
  return out;
}

Field kArg0Str{0, Conv::kStr};
Field kArg1Float{1, Conv::kFloat};
Field kArg1Int{1, Conv::kInt};
Field kArg2Int{2, Conv::kInt};

// `template % (self.<attr>, ...)`: the message, built only when printed.
PyObject* Format(PyObject* self, const char* format, std::initializer_list<const char*> attrs) {
  PyObject* values = PyTuple_New(static_cast<Py_ssize_t>(attrs.size()));
  if (values == nullptr) return nullptr;
  Py_ssize_t i = 0;
  for (const char* attr : attrs) {
    PyObject* v = PyObject_GetAttrString(self, attr);
    if (v == nullptr) {
      Py_DECREF(values);
      return nullptr;
    }
    PyTuple_SET_ITEM(values, i++, v);
  }
  PyObject* fmt = PyUnicode_FromString(format);
  PyObject* out = fmt == nullptr ? nullptr : PyUnicode_Format(fmt, values);
  Py_XDECREF(fmt);
  Py_DECREF(values);
  return out;
}

// BaseException.__init__(self, *args): sets `args`, as super().__init__(...) does.
int InitArgs(PyObject* self, PyObject* args) {
  return reinterpret_cast<PyTypeObject*>(PyExc_BaseException)->tp_init(self, args, nullptr);
}

// __init__ taking exactly the named fields (positional or keyword), stored as `args`.
PyObject* InitFields(PyObject* self, PyObject* args, PyObject* kwargs, const char* format,
                     const char* const* keywords) {
  PyObject* a[3] = {nullptr, nullptr, nullptr};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, format, const_cast<char**>(keywords), &a[0], &a[1],
                                   &a[2])) {
    return nullptr;
  }
  Py_ssize_t n = 0;
  while (n < 3 && a[n] != nullptr) ++n;
  PyObject* fields = PyTuple_New(n);
  if (fields == nullptr) return nullptr;
  for (Py_ssize_t i = 0; i < n; ++i) PyTuple_SET_ITEM(fields, i, Py_NewRef(a[i]));
  const int rc = InitArgs(self, fields);
  Py_DECREF(fields);
  if (rc < 0) return nullptr;
  Py_RETURN_NONE;
}

// --- per-class methods --------------------------------------------------------------------------

const char* const kNameRetryIn[] = {"name", "retry_in", nullptr};
const char* const kNameMaxCalls[] = {"name", "max_calls", nullptr};
const char* const kNameBulkhead[] = {"name", "max_concurrent", "max_waiting", nullptr};
const char* const kName[] = {"name", nullptr};
const char* const kNameProbability[] = {"name", "probability", nullptr};

PyObject* BreakerOpenInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  return InitFields(self, args, kwargs, "OO:BreakerOpen", kNameRetryIn);
}
PyObject* BreakerOpenStr(PyObject* self, PyObject*) {
  return Format(self, "circuit breaker %r is open (half-open in %.3f s)", {"name", "retry_in"});
}
PyObject* HalfOpenFullInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  return InitFields(self, args, kwargs, "OO:BreakerHalfOpenFull", kNameMaxCalls);
}
PyObject* HalfOpenFullStr(PyObject* self, PyObject*) {
  return Format(self, "circuit breaker %r is half-open and all %s probe slot(s) are taken",
                {"name", "max_calls"});
}
PyObject* BulkheadFullInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  return InitFields(self, args, kwargs, "OOO:BulkheadFull", kNameBulkhead);
}
PyObject* BulkheadFullStr(PyObject* self, PyObject*) {
  return Format(self, "bulkhead %r is full (%s running, %s may wait)",
                {"name", "max_concurrent", "max_waiting"});
}
PyObject* BulkheadClosedInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  return InitFields(self, args, kwargs, "O:BulkheadClosed", kName);
}
PyObject* BulkheadClosedStr(PyObject* self, PyObject*) {
  return Format(self, "bulkhead %r is closed", {"name"});
}
PyObject* ThrottledInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  return InitFields(self, args, kwargs, "OO:Throttled", kNameProbability);
}
PyObject* ThrottledStr(PyObject* self, PyObject*) {
  return Format(self, "throttle %r rejected the call (p_reject = %.3f)", {"name", "probability"});
}

// __init__(message, attempts) with `attempts` an instance attribute and `args` == (message,).
PyObject* InitMessageAttempts(PyObject* self, PyObject* message, PyObject* attempts) {
  PyObject* fields = PyTuple_Pack(1, message);
  if (fields == nullptr) return nullptr;
  const int rc = InitArgs(self, fields);
  Py_DECREF(fields);
  if (rc < 0 || PyObject_SetAttrString(self, "attempts", attempts) < 0) return nullptr;
  Py_RETURN_NONE;
}

PyObject* CancelledInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* const kKeywords[] = {"message", "attempts", nullptr};
  PyObject* message = nullptr;
  PyObject* attempts = nullptr;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:Cancelled", const_cast<char**>(kKeywords),
                                   &message, &attempts)) {
    return nullptr;
  }
  py::object default_message;
  if (message == nullptr) {
    default_message = py::str("cancelled");
    message = default_message.ptr();
  }
  py::object zero;
  if (attempts == nullptr) {
    zero = py::int_(0);
    attempts = zero.ptr();
  }
  return InitMessageAttempts(self, message, attempts);
}

PyObject* RetryErrorInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* const kKeywords[] = {"message", "attempts", nullptr};
  PyObject* message = nullptr;
  PyObject* attempts = nullptr;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:RetryError", const_cast<char**>(kKeywords),
                                   &message, &attempts)) {
    return nullptr;
  }
  return InitMessageAttempts(self, message, attempts);
}

// (type, (message, attempts), __dict__): BaseException's own reduction would call the class with
// `args` alone, which RetryError's constructor refuses and Cancelled's reads as attempts=0.
PyObject* MessageAttemptsReduce(PyObject* self, PyObject*) {
  PyObject* args = PyObject_GetAttrString(self, "args");
  if (args == nullptr) return nullptr;
  PyObject* message = PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 0
                          ? Py_NewRef(PyTuple_GET_ITEM(args, 0))
                          : PyUnicode_FromString("");
  Py_DECREF(args);
  if (message == nullptr) return nullptr;
  PyObject* attempts = PyObject_GetAttrString(self, "attempts");
  if (attempts == nullptr) {
    Py_DECREF(message);
    return nullptr;
  }
  PyObject* dict = PyObject_GenericGetDict(self, nullptr);
  PyObject* out = dict == nullptr
                      ? nullptr
                      : Py_BuildValue("(O(OO)O)", reinterpret_cast<PyObject*>(Py_TYPE(self)),
                                      message, attempts, dict);
  Py_XDECREF(dict);
  Py_DECREF(attempts);
  Py_DECREF(message);
  return out;
}

template <auto F>
PyCFunction AsCFunction() {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(F));
}

// Method tables: __init__ then __str__ (either may be absent).
PyMethodDef kBreakerOpenMethods[] = {
    {"__init__", AsCFunction<&BreakerOpenInit>(), METH_VARARGS | METH_KEYWORDS,
     "__init__($self, /, name, retry_in)\n--\n\n"},
    {"__str__", &BreakerOpenStr, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};
PyMethodDef kHalfOpenFullMethods[] = {
    {"__init__", AsCFunction<&HalfOpenFullInit>(), METH_VARARGS | METH_KEYWORDS,
     "__init__($self, /, name, max_calls)\n--\n\n"},
    {"__str__", &HalfOpenFullStr, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};
PyMethodDef kBulkheadFullMethods[] = {
    {"__init__", AsCFunction<&BulkheadFullInit>(), METH_VARARGS | METH_KEYWORDS,
     "__init__($self, /, name, max_concurrent, max_waiting)\n--\n\n"},
    {"__str__", &BulkheadFullStr, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};
PyMethodDef kBulkheadClosedMethods[] = {
    {"__init__", AsCFunction<&BulkheadClosedInit>(), METH_VARARGS | METH_KEYWORDS,
     "__init__($self, /, name)\n--\n\n"},
    {"__str__", &BulkheadClosedStr, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};
PyMethodDef kThrottledMethods[] = {
    {"__init__", AsCFunction<&ThrottledInit>(), METH_VARARGS | METH_KEYWORDS,
     "__init__($self, /, name, probability)\n--\n\n"},
    {"__str__", &ThrottledStr, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};
PyMethodDef kCancelledMethods[] = {
    {"__init__", AsCFunction<&CancelledInit>(), METH_VARARGS | METH_KEYWORDS,
     "__init__($self, /, message='cancelled', attempts=0)\n--\n\n"},
    {"__reduce__", &MessageAttemptsReduce, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};
PyMethodDef kRetryErrorMethods[] = {
    {"__init__", AsCFunction<&RetryErrorInit>(), METH_VARARGS | METH_KEYWORDS,
     "__init__($self, /, message, attempts)\n--\n\n"},
    {"__reduce__", &MessageAttemptsReduce, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef kBreakerOpenFields[] = {
    {"name", &GetField, nullptr, "The breaker's name.", &kArg0Str},
    {"retry_in", &GetField, nullptr, "Seconds until the breaker admits a half-open probe.",
     &kArg1Float},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};
PyGetSetDef kHalfOpenFullFields[] = {
    {"name", &GetField, nullptr, "The breaker's name.", &kArg0Str},
    {"max_calls", &GetField, nullptr, "The breaker's ``half_open_max_calls``.", &kArg1Int},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};
PyGetSetDef kBulkheadFullFields[] = {
    {"name", &GetField, nullptr, "The bulkhead's name.", &kArg0Str},
    {"max_concurrent", &GetField, nullptr, "Calls allowed to run at once.", &kArg1Int},
    {"max_waiting", &GetField, nullptr, "Calls allowed to wait for a slot.", &kArg2Int},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};
PyGetSetDef kBulkheadClosedFields[] = {
    {"name", &GetField, nullptr, "The bulkhead's name.", &kArg0Str},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};
PyGetSetDef kThrottledFields[] = {
    {"name", &GetField, nullptr, "The throttle's name.", &kArg0Str},
    {"probability", &GetField, nullptr, "The rejection probability at the time of the call.",
     &kArg1Float},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

// Creates `module.name` (bases: a type or a tuple), adds its methods and fields, and puts it on
// `m`. The reference is kept for the process's lifetime (raised from any binding).
PyObject* NewError(py::module_& m, const char* module, const char* name, const char* doc,
                   py::handle bases, PyMethodDef* methods = nullptr, PyGetSetDef* fields = nullptr,
                   const char* reason = nullptr) {
  py::dict dict;
  if (reason != nullptr) dict["reason"] = py::str(reason);
  const std::string qualified = std::string(module) + "." + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), dict.ptr());
  if (type == nullptr) throw py::error_already_set();
  auto* t = reinterpret_cast<PyTypeObject*>(type);
  for (PyMethodDef* def = methods; def != nullptr && def->ml_name != nullptr; ++def) {
    py::object descr = py::reinterpret_steal<py::object>(PyDescr_NewMethod(t, def));
    if (!descr) throw py::error_already_set();
    // Setting the attribute (not filling the dict) updates the type's tp_init/tp_str slots.
    if (PyObject_SetAttrString(type, def->ml_name, descr.ptr()) < 0) throw py::error_already_set();
  }
  for (PyGetSetDef* def = fields; def != nullptr && def->name != nullptr; ++def) {
    py::object descr = py::reinterpret_steal<py::object>(PyDescr_NewGetSet(t, def));
    if (!descr) throw py::error_already_set();
    if (PyObject_SetAttrString(type, def->name, descr.ptr()) < 0) throw py::error_already_set();
  }
  m.attr(name) = py::reinterpret_borrow<py::object>(type);
  return type;
}

// The tuple of the given types, without duplicates (aliases of one type since Python 3.11).
py::tuple UniqueTypes(std::initializer_list<py::handle> types) {
  py::list out;
  for (py::handle t : types) {
    if (!out.contains(t)) out.append(t);
  }
  return py::tuple(out);
}

}  // namespace

const ErrorTypes& Errors() { return *g_errors; }

void RegisterErrors(py::module_& m) {
  constexpr const char* kErrors = "reliability_lab.errors";
  auto* e = new ErrorTypes();  // never destroyed: raised from any binding, any time
  e->base = NewError(m, kErrors, "ReliabilityLabError",
                     "Base class of every error raised by reliability-lab's policies and engines.",
                     PyExc_Exception);
  e->rejected = NewError(
      m, kErrors, "Rejected",
      "A policy refused the call locally: the guarded function was not called.\n\n"
      "Retry loops treat every rejection as permanent: retrying cannot help until the policy's "
      "state\nchanges, and hammering it only burns the backoff budget.",
      e->base);
  e->breaker_open = NewError(
      m, kErrors, "BreakerOpen",
      "The circuit breaker is open: calls fail fast until ``retry_in`` seconds have passed.\n\n"
      "Raised from native code on the hot path, so the fields live in ``args`` and the message "
      "is\nbuilt only when printed.",
      e->rejected, kBreakerOpenMethods, kBreakerOpenFields);
  e->breaker_half_open_full = NewError(
      m, kErrors, "BreakerHalfOpenFull",
      "The breaker is half-open and every probe slot is taken: the second rejection type.\n\n"
      "Code that only checks for :class:`BreakerOpen` misses this one during recovery; catch\n"
      ":class:`Rejected` (or both) instead.",
      e->rejected, kHalfOpenFullMethods, kHalfOpenFullFields);
  e->bulkhead_full =
      NewError(m, kErrors, "BulkheadFull",
               "The bulkhead has no free slot and no room (or no time left) to wait for one.",
               e->rejected, kBulkheadFullMethods, kBulkheadFullFields);
  e->bulkhead_closed =
      NewError(m, kErrors, "BulkheadClosed",
               "The bulkhead was closed: waiters were released and every later acquisition fails.",
               e->rejected, kBulkheadClosedMethods, kBulkheadClosedFields);
  e->throttled =
      NewError(m, kErrors, "Throttled",
               "The adaptive throttle rejected the call locally (client-side load shedding).",
               e->rejected, kThrottledMethods, kThrottledFields);
  e->cancelled = NewError(
      m, kErrors, "Cancelled",
      "The caller cancelled the call (e.g. a retry's ``cancel`` event was set during a "
      "backoff).\n\n"
      "Like every cancellation it is neither a success nor a failure for a circuit breaker, and "
      "it is\nnever retried. ``__cause__`` is the last attempt's exception, if an attempt had "
      "run.\n\n"
      "Attributes:\n    attempts: attempts made before the cancellation, the first call "
      "included.",
      e->base, kCancelledMethods);
  e->retry_error = NewError(
      m, kErrors, "RetryError",
      "A retry loop ended without success; ``__cause__`` holds the last attempt's exception.\n\n"
      "Attributes:\n    attempts: attempts made, the first call included.\n"
      "    reason: ``\"exhausted\"``, ``\"deadline\"`` or ``\"budget\"``.",
      e->base, kRetryErrorMethods, nullptr, "error");
  e->retry_exhausted =
      NewError(m, kErrors, "RetryExhausted",
               "Every one of ``max_attempts`` attempts failed with a retryable outcome.",
               e->retry_error, nullptr, nullptr, "exhausted");
  e->deadline_exceeded =
      NewError(m, kErrors, "DeadlineExceeded",
               "The caller's deadline passed, or the next backoff sleep would have ended after it.",
               e->retry_error, nullptr, nullptr, "deadline");
  e->retry_budget_exhausted =
      NewError(m, kErrors, "RetryBudgetExhausted",
               "The retry budget refused the next retry (retry storms are capped by design).",
               e->retry_error, nullptr, nullptr, "budget");
  e->lab_closed =
      NewError(m, "reliability_lab.live", "LabClosedError",
               "The lab is not running (not started yet, or shut down): it accepts no new orders.",
               py::make_tuple(py::handle(e->base), py::handle(PyExc_RuntimeError)));
  // A wrong type is a TypeError; it is a ValueError too, so that code catching a bad
  // configuration as ValueError (as every range error is) catches it as well.
  e->config_type = NewError(
      m, kErrors, "ConfigTypeError",
      "A configuration value of the wrong type (a string for a number, a float for an integer, "
      "a dict for a config object...),\nnaming its dotted path, the expected type and the value. "
      "Both a TypeError and a ValueError.",
      py::make_tuple(py::handle(PyExc_TypeError), py::handle(PyExc_ValueError)));

  // The stdlib's cancellation and timeout types (imports of the standard library only).
  py::module_ asyncio = py::module_::import("asyncio");
  py::module_ futures = py::module_::import("concurrent.futures");
  py::tuple cancelled =
      UniqueTypes({PyExc_KeyboardInterrupt, PyExc_SystemExit, PyExc_GeneratorExit,
                   asyncio.attr("CancelledError"), futures.attr("CancelledError"), e->cancelled});
  py::tuple timeouts =
      UniqueTypes({PyExc_TimeoutError, asyncio.attr("TimeoutError"), futures.attr("TimeoutError")});
  m.attr("CANCELLED_TYPES") = cancelled;
  m.attr("TIMEOUT_TYPES") = timeouts;
  e->cancelled_types = cancelled.release().ptr();
  e->timeout_types = timeouts.release().ptr();
  g_errors = e;
}

PyObject* SetErrorFromStatus(const absl::Status& status) {
  const std::string message(status.message());
  PyObject* type = PyExc_RuntimeError;
  switch (status.code()) {
    case absl::StatusCode::kOk:
      PyErr_SetString(PyExc_SystemError, "SetErrorFromStatus called with an OK status");
      return nullptr;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      type = PyExc_ValueError;
      break;
    case absl::StatusCode::kNotFound:
      type = PyExc_KeyError;
      break;
    case absl::StatusCode::kUnavailable:
      type = Errors().lab_closed;
      break;
    default:
      break;
  }
  PyErr_SetString(type, message.c_str());
  return nullptr;
}

void ThrowConfigType(const std::string& message) {
  PyErr_SetString(Errors().config_type, message.c_str());
  throw py::error_already_set();
}

void ThrowIfError(const absl::Status& status) {
  if (status.ok()) return;
  SetErrorFromStatus(status);
  throw py::error_already_set();
}

}  // namespace rlab::bindings
