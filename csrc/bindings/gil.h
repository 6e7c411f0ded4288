// Releasing the GIL around native work, and taking it back safely (the two binding modules, cpu.cpp and
// cuda.cpp). Included after pybind11 (Python.h).
#pragma once
#include <chrono>
#include <thread>
#include <type_traits>
#if defined(__GLIBCXX__)
#include <cxxabi.h>  // abi::__forced_unwind
#endif

namespace rdf {
namespace bindings {

inline bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

// A daemon thread whose call outlives the interpreter (the main thread began exiting meanwhile) must not
// come back to Python, and must not unwind either. CPython before 3.14 ends such a thread when it asks for
// the GIL, with pthread_exit, which unwinds: out of a destructor (pybind11's gil_scoped_release takes the
// GIL back in one) that std::terminate()s the process ("terminate called without an active exception"), and
// through the binding's frames it drops Python references without the GIL while the main thread tears the
// interpreter down (a crash). So such a thread sleeps until the process ends, as CPython 3.14 does itself;
// it holds neither the GIL nor any of the CPU pool's locks by then.
[[noreturn]] inline void park_until_exit() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

// Takes the GIL back after native work, in ordinary code (never a destructor). Being finalizing is checked
// first, and caught if it begins while this thread waits for the GIL.
inline void take_gil_back(PyThreadState* state) {
  if (interpreter_finalizing()) park_until_exit();
#if defined(__GLIBCXX__)
  try {
    PyEval_RestoreThread(state);
  } catch (abi::__forced_unwind&) {
    park_until_exit();  // leaving this handler without rethrowing would abort
  }
#else
  PyEval_RestoreThread(state);
#endif
}

// The thread state without_gil saved on this thread while its work runs (nullptr outside it). Code inside the
// work that needs the GIL for a moment (cpu.cpp's signal check between chunks) takes it back through this
// state with with_gil_inside_work. Asking pybind11 for the GIL there instead (gil_scoped_acquire) looks the
// thread's state up in CPython's thread-state key, which interpreter finalization deletes: a daemon thread
// then made a new thread state, on the runtime's lock that finalization had freed, and crashed (SIGSEGV in
// new_threadstate, seen in a core dump of the daemon-exit test in test_reliability.py).
inline thread_local PyThreadState* t_saved_state = nullptr;

// Runs check() with the GIL held, from inside without_gil's work on the same thread, and releases the GIL
// again, also when check() throws. Parks (above) if the interpreter is finalizing.
template <class Check>
void with_gil_inside_work(Check&& check) {
  take_gil_back(t_saved_state);
  try {
    check();
  } catch (...) {
    PyEval_SaveThread();
    throw;
  }
  PyEval_SaveThread();
}

// Runs work() with the GIL released and returns its result, taking the GIL back as above.
template <class Work>
auto without_gil(Work&& work) -> decltype(work()) {
  PyThreadState* state = PyEval_SaveThread();
  // Restores the outer value on every way out (work() does not nest calls today; this keeps it correct if
  // it does).
  struct SavedState {
    PyThreadState* outer;
    ~SavedState() { t_saved_state = outer; }
  } saved{t_saved_state};
  t_saved_state = state;
  try {
    if constexpr (std::is_void_v<decltype(work())>) {
      work();
      take_gil_back(state);
    } else {
      auto result = work();
      take_gil_back(state);
      return result;
    }
#if defined(__GLIBCXX__)
  } catch (abi::__forced_unwind&) {
    park_until_exit();  // ended while asking for the GIL inside work() (cpu.cpp's signal check)
#endif
  } catch (...) {
    take_gil_back(state);
    throw;
  }
}

}  // namespace bindings
}  // namespace rdf
