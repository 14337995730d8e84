// The live engine, bound for Python: real worker threads that never touch the GIL. Every call
// that can block (waiting for orders, shutdown, joining load generators, batch submits) releases
// the GIL; the others hold engine locks only for a few instructions and never call into Python,
// so a Python thread holding the GIL can never deadlock with a worker.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <structmember.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "common.h"
#include "result_dict.h"
#include "rlab/core/clock.h"
#include "rlab/core/metrics.h"
#include "rlab/live/live_engine.h"
#include "rlab/live/live_services.h"
#include "rlab/model/order_flow.h"
#include "rlab/model/scenario.h"
#include "scenario_from_py.h"

namespace rlab::bindings {
namespace {

std::string Str(std::string_view s) { return std::string(s); }

// A timeout from Python: None or a negative number waits without limit.
int64_t TimeoutNs(std::optional<double> timeout_s, const char* name) {
  if (!timeout_s.has_value() || *timeout_s < 0) return -1;
  return DurationArgNs(name, *timeout_s, true);
}

py::dict ViewDict(const LiveOrderView& v) {
  py::dict d;
  const double nan = std::nan("");
  d["status"] = Str(OrderStatusName(v.status));
  d["reason"] = Str(FailReasonName(v.reason));
  d["arrival"] = NsToSeconds(v.record.arrival_ns);
  d["start"] = v.record.start_ns < 0 ? nan : NsToSeconds(v.record.start_ns);
  d["end"] = v.record.end_ns < 0 ? nan : NsToSeconds(v.record.end_ns);
  d["attempts"] = static_cast<int>(v.record.attempts);
  d["degraded"] = v.record.degraded != 0;
  d["charges"] = static_cast<int>(v.record.charges);
  d["applied_charges"] = static_cast<int>(v.record.applied);
  return d;
}

py::list MetricsList(const std::vector<FamilySnapshot>& snap) {
  py::list out;
  for (const FamilySnapshot& f : snap) {
    py::dict d;
    d["name"] = f.name;
    d["help"] = f.help;
    d["type"] = f.type == MetricType::kCounter ? "counter"
                : f.type == MetricType::kGauge ? "gauge"
                                               : "histogram";
    d["labels"] = f.label_names;
    d["bounds"] = f.bounds;
    py::list series;
    for (const SeriesSnapshot& s : f.series) {
      series.append(py::make_tuple(s.label_values, s.value, s.cumulative, s.sum, s.count));
    }
    d["series"] = series;
    out.append(d);
  }
  return out;
}

// --- The one-by-one submit path ---------------------------------------------------------------
//
// Python's `lab.submit()` is the raw METH_FASTCALL method LiveEngine.submit, and the handle it
// returns is a small native type (not GC-tracked, so a million handles trigger no collection).
// Through pybind11 the dispatch, the default arguments and a Python-level handle object cost
// more than the order itself (about 1.7 us against 0.5 us); errors here are set with PyErr_*
// rather than thrown, for the same reason.

// What the raw methods need from Python, set by RegisterLive and by _bind_live (called when
// reliability_lab.live is imported: OrderView is a frozen dataclass of the Python layer, so that
// views compare, print and convert like the rest of its results). Strong references for the
// process's lifetime.
struct LiveRefs {
  PyTypeObject* engine_type = nullptr;  // the pybind11 LiveEngine class
  PyTypeObject* handle_type = nullptr;  // OrderHandle
  PyObject* order_view = nullptr;       // reliability_lab.live.OrderView
  PyObject* key_name = nullptr;         // interned keyword names
  PyObject* idempotency_key_name = nullptr;
  PyObject* timeout_name = nullptr;
  PyObject* criticality_name = nullptr;  // intake.shedding
  PyObject* tenant_name = nullptr;
  std::array<PyObject*, kNumOrderStatuses> status_names{};
  std::array<PyObject*, kNumFailReasons> reason_names{};
};

LiveRefs& Refs() {
  static LiveRefs* refs = new LiveRefs();  // never destroyed: raw methods may outlive statics
  return *refs;
}

// Binds OrderView if reliability_lab.live has not yet done it (a caller that imported only
// _core); false with a Python error set if that fails. Only building a view needs it: every
// exception the bindings raise is native.
bool EnsureBound() {
  if (Refs().order_view != nullptr) return true;
  PyObject* live = PyImport_ImportModule("reliability_lab.live");
  if (live == nullptr) return false;
  Py_DECREF(live);
  if (Refs().order_view == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "reliability_lab.live did not bind the live engine");
    return false;
  }
  return true;
}

// The LiveEngine inside a pybind11 instance (the method descriptor checked the type).
LiveEngine* EngineOf(PyObject* self) {
  auto* inst = reinterpret_cast<py::detail::instance*>(self);
  void* v = inst->simple_layout ? inst->simple_value_holder[0]
                                : py::detail::values_and_holders(inst).begin()->value_ptr();
  if (v == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "LiveEngine.__init__ was not called");
    return nullptr;
  }
  return static_cast<LiveEngine*>(v);
}

// A handle holds a counted reference to its order's slot, so it answers for as long as it lives,
// even once the engine released the slot from its table (memory bounded by orders in flight
// plus the retained history, plus whatever handles the caller keeps).
struct HandleObject {
  PyObject_HEAD LiveEngine* engine;  // owned by `owner`
  PyObject* owner;                   // the Python LiveEngine: a handle keeps its engine alive
  int64_t id;
  LiveEngine::OrderRef ref;  // constructed in NewHandle, destroyed in HandleDealloc
};

PyObject* NewHandle(PyObject* owner, LiveEngine* engine, LiveEngine::OrderRef ref) {
  HandleObject* h = PyObject_New(HandleObject, Refs().handle_type);
  if (h == nullptr) return nullptr;
  Py_INCREF(owner);
  h->owner = owner;
  h->engine = engine;
  h->id = ref.id();
  new (&h->ref) LiveEngine::OrderRef(std::move(ref));
  return reinterpret_cast<PyObject*>(h);
}

void HandleDealloc(PyObject* self) {
  auto* h = reinterpret_cast<HandleObject*>(self);
  PyTypeObject* type = Py_TYPE(self);
  h->ref.~OrderRef();
  Py_XDECREF(h->owner);
  type->tp_free(self);
  Py_DECREF(type);  // a heap type: each instance holds a reference
}

// The handle of order `id` looked up in the engine's table, or nullptr with KeyError set.
PyObject* FindHandle(PyObject* owner, LiveEngine* engine, int64_t id) {
  absl::StatusOr<LiveEngine::OrderRef> ref = engine->Find(id);
  if (!ref.ok()) return SetErrorFromStatus(ref.status());  // NotFound: KeyError
  return NewHandle(owner, engine, *std::move(ref));
}

// OrderHandle(engine, order_id): the handle of an existing order.
PyObject* HandleNew(PyTypeObject* /*type*/, PyObject* args, PyObject* kwargs) {
  static const char* kKeywords[] = {"engine", "order_id", nullptr};
  PyObject* owner = nullptr;
  long long id = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OL:OrderHandle", const_cast<char**>(kKeywords),
                                   &owner, &id)) {
    return nullptr;
  }
  if (!PyObject_TypeCheck(owner, Refs().engine_type)) {
    PyErr_Format(PyExc_TypeError, "engine must be a LiveEngine, got %s", Py_TYPE(owner)->tp_name);
    return nullptr;
  }
  LiveEngine* engine = EngineOf(owner);
  if (engine == nullptr) return nullptr;
  return FindHandle(owner, engine, id);
}

// The order's view (always available: the handle holds the order's slot).
LiveOrderView HandleView(HandleObject* h) { return h->engine->View(h->ref); }

PyObject* HandleStatus(PyObject* self, void*) {
  const LiveOrderView v = HandleView(reinterpret_cast<HandleObject*>(self));
  return Py_NewRef(Refs().status_names[static_cast<size_t>(v.status)]);
}

PyObject* HandleReason(PyObject* self, void*) {
  const LiveOrderView v = HandleView(reinterpret_cast<HandleObject*>(self));
  return Py_NewRef(Refs().reason_names[static_cast<size_t>(v.reason)]);
}

PyObject* HandleDone(PyObject* self, PyObject*) {
  const LiveOrderView v = HandleView(reinterpret_cast<HandleObject*>(self));
  return PyBool_FromLong(IsTerminal(v.status) ? 1 : 0);
}

PyObject* HandleViewMethod(PyObject* self, PyObject*) {
  auto* h = reinterpret_cast<HandleObject*>(self);
  const LiveOrderView v = HandleView(h);
  if (!EnsureBound()) return nullptr;
  try {
    py::dict fields = ViewDict(v);
    fields["id"] = h->id;
    return py::handle(Refs().order_view)(**fields).release().ptr();
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

// Waits are cut into slices this long with the GIL released, so that Ctrl-C (checked between
// slices) interrupts a wait without limit.
constexpr double kWaitSliceS = 0.05;

PyObject* HandleWait(PyObject* self, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  auto* h = reinterpret_cast<HandleObject*>(self);
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  if (nargs + nkw > 1) {
    PyErr_SetString(PyExc_TypeError, "wait() takes at most 1 argument (timeout)");
    return nullptr;
  }
  PyObject* timeout = nargs == 1 ? args[0] : nullptr;
  if (nkw == 1) {
    PyObject* name = PyTuple_GET_ITEM(kwnames, 0);
    if (name != Refs().timeout_name && PyUnicode_Compare(name, Refs().timeout_name) != 0) {
      if (PyErr_Occurred() == nullptr) {
        PyErr_Format(PyExc_TypeError, "wait() got an unexpected keyword argument %R", name);
      }
      return nullptr;
    }
    timeout = args[0];
  }
  double remaining = std::numeric_limits<double>::infinity();
  if (timeout != nullptr && timeout != Py_None) {
    remaining = PyFloat_AsDouble(timeout);
    if (remaining == -1.0 && PyErr_Occurred() != nullptr) return nullptr;
    if (!std::isfinite(remaining) || remaining < 0) {
      PyErr_Format(PyExc_ValueError, "timeout must be None or a finite number >= 0, got %R",
                   timeout);
      return nullptr;
    }
  }
  while (true) {
    const double step = std::min(kWaitSliceS, remaining);
    bool done;
    Py_BEGIN_ALLOW_THREADS;
    done = h->engine->Wait(h->ref, SecondsToNs(step));
    Py_END_ALLOW_THREADS;
    if (done) Py_RETURN_TRUE;
    if (PyErr_CheckSignals() != 0) return nullptr;  // KeyboardInterrupt and friends
    remaining -= step;
    if (remaining <= 0) Py_RETURN_FALSE;
  }
}

PyObject* HandleRepr(PyObject* self) {
  auto* h = reinterpret_cast<HandleObject*>(self);
  PyObject* status = HandleStatus(self, nullptr);
  if (status == nullptr) return nullptr;
  PyObject* out = PyUnicode_FromFormat("OrderHandle(id=%lld, status=%R)",
                                       static_cast<long long>(h->id), status);
  Py_DECREF(status);
  return out;
}

PyMethodDef kHandleMethods[] = {
    {"done", &HandleDone, METH_NOARGS,
     "done($self, /)\n--\n\nWhether the order is in a terminal state."},
    {"view", &HandleViewMethod, METH_NOARGS,
     "view($self, /)\n--\n\nA snapshot of everything known about the order (an OrderView)."},
    {"wait", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&HandleWait)),
     METH_FASTCALL | METH_KEYWORDS,
     "wait($self, /, timeout=None)\n--\n\nWaits until the order is terminal, at most `timeout` "
     "seconds (None: no limit); returns whether it is. The GIL is released while waiting; Ctrl-C "
     "interrupts the wait."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef kHandleGetSet[] = {
    {"status", &HandleStatus, nullptr,
     "The order's current status: pending, queued, processing, or a terminal state.", nullptr},
    {"reason", &HandleReason, nullptr,
     "Why the order failed, was rejected or cancelled ('' otherwise or while running).", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMemberDef kHandleMembers[] = {
    {"id", T_LONGLONG, offsetof(HandleObject, id), READONLY,
     "The order's id (its submission index)."},
    {nullptr, 0, 0, 0, nullptr},
};

PyType_Slot kHandleSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(&HandleDealloc)},
    {Py_tp_repr, reinterpret_cast<void*>(&HandleRepr)},
    {Py_tp_new, reinterpret_cast<void*>(&HandleNew)},
    {Py_tp_methods, kHandleMethods},
    {Py_tp_getset, kHandleGetSet},
    {Py_tp_members, kHandleMembers},
    {Py_tp_doc, const_cast<char*>("OrderHandle(engine, order_id)\n--\n\n"
                                  "A submitted order: read its status, or wait for it to end.")},
    {0, nullptr},
};

// Not GC-tracked (a handle refers only to its engine, which never refers back) and final, so
// that NewHandle can fill the fields directly.
PyType_Spec kHandleSpec = {"reliability_lab.OrderHandle", sizeof(HandleObject), 0,
                           Py_TPFLAGS_DEFAULT, kHandleSlots};

// intake.shedding: an order's origin from submit()'s criticality (None or a class name) and
// tenant (None or a declared tenant's name); nullopt with a Python error set when invalid.
// Defaults: "default", and the first declared tenant.
std::optional<OrderOrigin> ReadOrigin(const LiveEngine& engine, PyObject* criticality,
                                      PyObject* tenant) {
  OrderOrigin o;
  if (criticality != nullptr && criticality != Py_None) {
    const char* name = PyUnicode_Check(criticality) ? PyUnicode_AsUTF8(criticality) : nullptr;
    if (name == nullptr) PyErr_Clear();
    bool found = false;
    for (int c = 0; name != nullptr && c < kNumCriticalities; ++c) {
      if (CriticalityName(static_cast<Criticality>(c)) == name) {
        o.criticality = static_cast<Criticality>(c);
        found = true;
      }
    }
    if (!found) {
      PyErr_Format(PyExc_ValueError,
                   "criticality must be None or one of 'critical', 'default', 'sheddable', got %R",
                   criticality);
      return std::nullopt;
    }
  }
  if (tenant != nullptr && tenant != Py_None) {
    const auto& shedding = engine.config().intake.shedding;
    const char* name = PyUnicode_Check(tenant) ? PyUnicode_AsUTF8(tenant) : nullptr;
    if (name == nullptr) PyErr_Clear();
    int index = -1;
    if (shedding && name != nullptr) {
      for (size_t t = 0; t < shedding->tenants.size(); ++t) {
        if (shedding->tenants[t].name == name) index = static_cast<int>(t);
      }
    }
    if (index < 0) {
      PyErr_Format(PyExc_ValueError,
                   "tenant must be None or the name of a tenant of intake.shedding.tenants, got %R",
                   tenant);
      return std::nullopt;
    }
    o.tenant = index;
  }
  return o;
}

// engine.submit(key=None, idempotency_key=None, *, criticality=None, tenant=None)
// -> OrderHandle.
PyObject* EngineSubmit(PyObject* self, PyObject* const* args, Py_ssize_t nargsf,
                       PyObject* kwnames) {
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs > 2) {
    PyErr_Format(PyExc_TypeError, "submit() takes at most 2 arguments (%zd given)", nargs);
    return nullptr;
  }
  PyObject* key = nargs >= 1 ? args[0] : nullptr;
  PyObject* idempotency_key = nargs >= 2 ? args[1] : nullptr;
  PyObject* criticality = nullptr;  // keyword-only
  PyObject* tenant = nullptr;
  if (kwnames != nullptr) {
    const LiveRefs& refs = Refs();
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); ++i) {
      PyObject* name = PyTuple_GET_ITEM(kwnames, i);
      PyObject** slot = nullptr;
      if (name == refs.key_name || PyUnicode_Compare(name, refs.key_name) == 0) {
        slot = &key;
      } else if (name == refs.idempotency_key_name ||
                 PyUnicode_Compare(name, refs.idempotency_key_name) == 0) {
        slot = &idempotency_key;
      } else if (PyUnicode_Compare(name, refs.criticality_name) == 0) {
        slot = &criticality;
      } else if (PyUnicode_Compare(name, refs.tenant_name) == 0) {
        slot = &tenant;
      }
      if (PyErr_Occurred() != nullptr) return nullptr;
      if (slot == nullptr) {
        PyErr_Format(PyExc_TypeError, "submit() got an unexpected keyword argument %R", name);
        return nullptr;
      }
      if (*slot != nullptr) {
        PyErr_Format(PyExc_TypeError, "submit() got multiple values for argument %R", name);
        return nullptr;
      }
      *slot = args[nargs + i];
    }
  }
  int key_value = -1;
  if (key != nullptr && key != Py_None) {
    int overflow = 0;
    const long long k =
        PyBool_Check(key) || !PyLong_Check(key) ? -1 : PyLong_AsLongLongAndOverflow(key, &overflow);
    if (k == -1 && PyErr_Occurred() != nullptr) return nullptr;
    if (overflow != 0 || k < 0 || k > std::numeric_limits<int32_t>::max()) {
      PyErr_Format(PyExc_ValueError, "key must be None or an integer in [0, %d], got %R",
                   std::numeric_limits<int32_t>::max(), key);
      return nullptr;
    }
    key_value = static_cast<int>(k);
  }
  std::string_view idem;
  if (idempotency_key != nullptr && idempotency_key != Py_None) {
    if (!PyUnicode_Check(idempotency_key)) {
      PyErr_Format(PyExc_TypeError, "idempotency_key must be None or a str, got %s",
                   Py_TYPE(idempotency_key)->tp_name);
      return nullptr;
    }
    if (!PyUnicode_IS_ASCII(idempotency_key)) {
      // Checked here: a non-ASCII string may not even encode (lone surrogates).
      PyErr_SetString(PyExc_ValueError,
                      "idempotency_key must be printable ASCII without spaces (characters "
                      "0x21..0x7e)");
      return nullptr;
    }
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(idempotency_key, &size);
    if (data == nullptr) return nullptr;
    if (size == 0) {
      PyErr_SetString(PyExc_ValueError,
                      "idempotency_key must be None or 1 to 200 characters, got ''");
      return nullptr;
    }
    idem = std::string_view(data, static_cast<size_t>(size));
  }
  LiveEngine* engine = EngineOf(self);
  if (engine == nullptr) return nullptr;
  const std::optional<OrderOrigin> origin = ReadOrigin(*engine, criticality, tenant);
  if (!origin) return nullptr;
  // With the GIL held: Submit never blocks (a full queue rejects), and releasing the GIL would
  // cost more than the order.
  absl::StatusOr<LiveEngine::OrderRef> order = engine->SubmitOrder(key_value, idem, origin);
  // ValueError for invalid arguments, LabClosedError for a lab that is not running.
  if (!order.ok()) return SetErrorFromStatus(order.status());
  return NewHandle(self, engine, *std::move(order));
}

PyMethodDef kSubmitMethod = {
    "submit", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&EngineSubmit)),
    METH_FASTCALL | METH_KEYWORDS,
    "submit($self, /, key=None, idempotency_key=None, *, criticality=None, tenant=None)\n--\n\n"
    "Submits one order and returns its "
    "OrderHandle (see reliability_lab.Lab.submit)."};

// Creates OrderHandle and the interned names; installs the raw submit on `cls`.
void RegisterRawLive(py::module_& m, py::class_<LiveEngine>& cls) {
  LiveRefs& refs = Refs();
  refs.engine_type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  Py_INCREF(refs.engine_type);
  PyObject* type = PyType_FromSpec(&kHandleSpec);
  if (type == nullptr) throw py::error_already_set();
  refs.handle_type = reinterpret_cast<PyTypeObject*>(type);
  m.attr("OrderHandle") = py::reinterpret_borrow<py::object>(type);
  refs.key_name = PyUnicode_InternFromString("key");
  refs.idempotency_key_name = PyUnicode_InternFromString("idempotency_key");
  refs.timeout_name = PyUnicode_InternFromString("timeout");
  refs.criticality_name = PyUnicode_InternFromString("criticality");
  refs.tenant_name = PyUnicode_InternFromString("tenant");
  for (int s = 0; s < kNumOrderStatuses; ++s) {
    const std::string name(OrderStatusName(static_cast<OrderStatus>(s)));
    refs.status_names[s] = PyUnicode_InternFromString(name.c_str());
  }
  for (int r = 0; r < kNumFailReasons; ++r) {
    const std::string name(FailReasonName(static_cast<FailReason>(r)));
    refs.reason_names[r] = PyUnicode_InternFromString(name.c_str());
  }
  PyObject* descr = PyDescr_NewMethod(refs.engine_type, &kSubmitMethod);
  if (descr == nullptr) throw py::error_already_set();
  cls.attr("submit") = py::reinterpret_steal<py::object>(descr);
  m.def(
      "_bind_live",
      [](py::object order_view) {
        if (!PyCallable_Check(order_view.ptr()))
          throw py::type_error("order_view must be callable");
        LiveRefs& r = Refs();
        Py_XDECREF(r.order_view);
        r.order_view = order_view.release().ptr();
      },
      py::arg("order_view"),
      "Tells OrderHandle.view() which class to build (reliability_lab.live does).");
}

// The orders of one submit_many call: one reference per chunk of slots they occupy, so that the
// batch's handles (made on access) answer however long ago their orders ended.
struct OrderBatch {
  py::object owner;  // the Python LiveEngine
  LiveEngine* engine = nullptr;
  std::vector<LiveEngine::OrderRef> chunks;  // in increasing id order

  py::object Handle(int64_t id) const {
    constexpr int kBits = LiveEngine::kOrderChunkBits;
    auto it = std::lower_bound(
        chunks.begin(), chunks.end(), id >> kBits,
        [](const LiveEngine::OrderRef& r, int64_t chunk) { return (r.id() >> kBits) < chunk; });
    PyObject* h = nullptr;
    if (it != chunks.end() && (it->id() >> kBits) == (id >> kBits)) {
      h = NewHandle(owner.ptr(), engine, it->Sibling(id));
    } else {
      h = FindHandle(owner.ptr(), engine, id);  // not of this batch: the table may know it
    }
    if (h == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(h);
  }
};

}  // namespace

void RegisterLive(py::module_& m) {
  py::class_<OrderBatch>(m, "_OrderBatch",
                         "The slots of one submit_many batch, held for its handles.")
      .def("handle", &OrderBatch::Handle, py::arg("id"),
           "The handle of order `id` (of this batch; others are looked up in the engine).");
  auto cls = py::class_<LiveEngine>(
      m, "LiveEngine", "The live engine: a scenario on real threads (see reliability_lab.live).");
  cls.def(
         py::init([](const py::object& scenario, double sample_every, bool record_orders,
                     bool record_events, const std::vector<double>& latency_bounds,
                     const std::string& ledger_path, bool ledger_fsync, bool order_events,
                     int64_t retain_orders, int64_t max_order_records, int64_t idempotency_window) {
           std::shared_ptr<const ScenarioConfig> holder;
           const ScenarioConfig& config = ScenarioArg(scenario, &holder);
           LiveOptions o;
           o.retain_orders = retain_orders;
           o.max_order_records = max_order_records;
           o.idempotency_window = idempotency_window;
           o.ledger_path = ledger_path;
           o.ledger_fsync = ledger_fsync;
           o.order_events = order_events;
           o.sample_every_ns =
               sample_every > 0 ? DurationArgNs("sample_every", sample_every, false) : 0;
           o.record_orders = record_orders;
           o.record_events = record_events;
           o.latency_bounds_s = latency_bounds;
           return ValueOrThrow(LiveEngine::Create(config, o));
         }),
         py::arg("scenario"), py::arg("sample_every") = 1.0, py::arg("record_orders") = true,
         py::arg("record_events") = true, py::arg("latency_bounds"), py::arg("ledger_path") = "",
         py::arg("ledger_fsync") = false, py::arg("order_events") = false,
         py::arg("retain_orders") = LiveOptions().retain_orders,
         py::arg("max_order_records") = LiveOptions().max_order_records,
         py::arg("idempotency_window") = LiveOptions().idempotency_window)
      .def("start",
           [](LiveEngine& e) {
             absl::Status s;
             {
               py::gil_scoped_release release;  // starts threads
               s = e.Start();
             }
             ThrowIfError(s);
           })
      .def(
          "set_faults",
          [](LiveEngine& e, const std::string& dependency, const py::object& scenario) {
            // The scenario with the new faults in place (compiled: read and validated, with
            // its dotted-path errors, when the Python Scenario was built). The engine's working
            // copy lists every tier's dependencies, a service's as "<service>.<dependency>".
            std::shared_ptr<const ScenarioConfig> holder;
            const ScenarioConfig sc = LiveWorkingConfig(ScenarioArg(scenario, &holder));
            for (const DependencyConfig& d : sc.dependencies) {
              if (d.name != dependency) continue;
              absl::Status s;
              {
                py::gil_scoped_release release;
                s = e.SetFaults(dependency, d.faults);
              }
              ThrowIfError(s);
              return;
            }
            throw py::key_error("no dependency named '" + dependency + "'");
          },
          py::arg("dependency"), py::arg("scenario"))
      .def(
          "set_breaker",
          [](LiveEngine& e, const std::string& dependency, const py::object& scenario) {
            // As set_faults: the scenario with the new breaker in place, so the field names,
            // units (seconds) and dotted-path errors are the scenario's own.
            std::shared_ptr<const ScenarioConfig> holder;
            const ScenarioConfig sc = LiveWorkingConfig(ScenarioArg(scenario, &holder));
            for (const DependencyConfig& d : sc.dependencies) {
              if (d.name != dependency) continue;
              if (!d.breaker) {
                throw py::value_error(dependency + ".breaker must be a breaker, got None");
              }
              absl::Status s;
              {
                py::gil_scoped_release release;
                s = e.SetBreakerConfig(dependency, *d.breaker);
              }
              ThrowIfError(s);
              return;
            }
            throw py::key_error("no dependency named '" + dependency + "'");
          },
          py::arg("dependency"), py::arg("scenario"))
      .def("take_order_events",
           [](LiveEngine& e) {
             std::vector<LiveOrderEvent> events;
             {
               py::gil_scoped_release release;
               events = e.TakeOrderEvents();
             }
             py::list out(events.size());
             for (size_t i = 0; i < events.size(); ++i) {
               const LiveOrderEvent& v = events[i];
               out[i] = py::make_tuple(v.id, Str(OrderStatusName(v.status)),
                                       Str(FailReasonName(v.reason)), NsToSeconds(v.t_ns),
                                       v.attempts, v.charges, v.degraded);
             }
             return out;
           })
      .def("internals",
           [](const LiveEngine& e) {
             LiveInternals in;
             {
               py::gil_scoped_release release;
               in = e.Internals();
             }
             py::dict d;
             d["running"] = in.running;
             d["queue_depth"] = in.queue_depth;
             d["queue_capacity"] = in.queue_capacity;
             d["workers"] = in.workers;
             d["busy_workers"] = in.busy_workers;
             d["in_flight"] = in.in_flight;
             d["arrived"] = in.arrived;
             py::dict deps;
             for (const LiveInternals::Dep& x : in.deps) {
               py::dict dd;
               dd["breaker_state"] = x.breaker
                                         ? py::object(py::str(Str(BreakerStateName(*x.breaker))))
                                         : py::object(py::none());
               dd["in_flight_calls"] = x.in_flight_calls;
               dd["faults_version"] = x.faults_version;
               deps[py::str(x.name)] = dd;
             }
             d["dependencies"] = deps;
             py::dict ledger;
             ledger["path"] = in.ledger_path.empty() ? py::object(py::none())
                                                     : py::object(py::str(in.ledger_path));
             ledger["entries"] = in.ledger_entries;
             ledger["double_charged"] = in.ledger_double_charged;
             ledger["write_errors"] = in.ledger_write_errors;
             d["ledger"] = ledger;
             ledger["tracked"] = in.ledger_tracked;
             d["order_events_pending"] = in.order_events_pending;
             py::dict memory;
             memory["order_slots"] = in.order_slots;
             memory["retained_orders"] = in.retained_orders;
             memory["recorded_orders"] = in.recorded_orders;
             memory["idempotency_keys_held"] = in.idempotency_keys_held;
             memory["ledger_tracked"] = in.ledger_tracked;
             d["memory"] = memory;
             return d;
           })
      .def(
          "submit_many",
          [](py::object self, int64_t n) {
            if (n < 0) throw py::value_error("n must be >= 0");
            LiveEngine& e = self.cast<LiveEngine&>();
            std::vector<int64_t> ids;
            OrderBatch batch;
            batch.owner = self;
            batch.engine = &e;
            absl::Status error;
            {
              py::gil_scoped_release release;
              ids.reserve(static_cast<size_t>(n));
              for (int64_t i = 0; i < n; ++i) {
                absl::StatusOr<LiveEngine::OrderRef> order = e.SubmitOrder(-1);
                if (!order.ok()) {
                  error = order.status();
                  break;
                }
                ids.push_back(order->id());
                // One reference per chunk (ids only grow, so a new chunk is a later one).
                constexpr int kBits = LiveEngine::kOrderChunkBits;
                if (batch.chunks.empty() ||
                    (batch.chunks.back().id() >> kBits) != (order->id() >> kBits)) {
                  batch.chunks.push_back(*std::move(order));
                }
              }
            }
            // Orders already submitted exist whatever happens next: raise only if none did.
            if (ids.empty() && !error.ok()) ThrowIfError(error);
            return py::make_tuple(
                py::array_t<int64_t>(static_cast<py::ssize_t>(ids.size()), ids.data()),
                std::move(batch));
          },
          py::arg("n"))
      .def("handles",
           [](py::object self) {
             LiveEngine& e = self.cast<LiveEngine&>();
             std::vector<LiveEngine::OrderRef> refs;
             {
               py::gil_scoped_release release;
               refs = e.Retained();
             }
             py::list out(refs.size());
             for (size_t i = 0; i < refs.size(); ++i) {
               PyObject* h = NewHandle(self.ptr(), &e, std::move(refs[i]));
               if (h == nullptr) throw py::error_already_set();
               out[i] = py::reinterpret_steal<py::object>(h);
             }
             return out;
           })
      .def(
          "wait_idle",
          [](const LiveEngine& e, std::optional<double> timeout) {
            const int64_t ns = TimeoutNs(timeout, "timeout");
            py::gil_scoped_release release;
            return e.WaitIdle(ns);
          },
          py::arg("timeout") = py::none())
      .def("start_load",
           [](LiveEngine& e) {
             absl::Status s;
             {
               py::gil_scoped_release release;  // starts threads
               s = e.StartLoad();
             }
             ThrowIfError(s);
           })
      .def("stop_load", &LiveEngine::StopLoad, py::call_guard<py::gil_scoped_release>())
      .def("set_arrival_rate",
           [](LiveEngine& e, double rate) {
             absl::Status s;
             {
               py::gil_scoped_release release;  // takes the load lock
               s = e.SetArrivalRate(rate);
             }
             ThrowIfError(s);
           })
      .def_property_readonly("arrival_rate", &LiveEngine::arrival_rate)
      .def("load_running", &LiveEngine::LoadRunning)
      .def(
          "shutdown",
          [](LiveEngine& e, std::optional<double> timeout) {
            const int64_t ns = TimeoutNs(timeout, "timeout");
            ShutdownReport r;
            {
              py::gil_scoped_release release;
              r = e.Shutdown(ns);
            }
            py::dict d;
            d["finished_in_time"] = r.finished_in_time;
            d["cancelled"] = r.cancelled;
            d["timed_out"] = r.timed_out;
            d["elapsed"] = NsToSeconds(r.elapsed_ns);
            d["internal_error"] = r.internal_error;
            return d;
          },
          py::arg("timeout") = py::none())
      .def_property_readonly("shut_down", &LiveEngine::shut_down)
      .def("metrics",
           [](LiveEngine& e) {
             std::vector<FamilySnapshot> snap;
             {
               // Takes breaker and registry locks: never with the GIL held.
               py::gil_scoped_release release;
               snap = e.MetricsSnapshot();
             }
             return MetricsList(snap);
           })
      .def("take_transitions",
           [](LiveEngine& e) {
             std::vector<SimTransition> taken;
             {
               py::gil_scoped_release release;
               taken = e.TakeTransitions();
             }
             py::list out;
             for (const SimTransition& t : taken) {
               out.append(py::make_tuple(NsToSeconds(t.t_ns), e.DependencyLabel(t.dep),
                                         Str(BreakerStateName(t.from)),
                                         Str(BreakerStateName(t.to))));
             }
             return out;
           })
      .def(
          "result",
          [](const LiveEngine& e, const std::vector<double>& latency_bounds, bool with_orders) {
            const SimResult* r = ValueOrThrow(e.result());
            py::dict d = ResultDict(e.config(), *r, latency_bounds, with_orders);
            d["orders_first_id"] = e.recorded_first_id();
            return d;
          },
          py::arg("latency_bounds"), py::arg("with_orders") = true)
      .def("now", [](const LiveEngine& e) { return NsToSeconds(e.NowNs()); })
      .def_property_readonly("arrived", &LiveEngine::arrived)
      .def_property_readonly("in_system", &LiveEngine::in_system);
  RegisterRawLive(m, cls);
}

}  // namespace rlab::bindings
