#include "rlab/live/bounded_queue.h"

namespace rlab {

std::string_view PushResultName(PushResult result) {
  switch (result) {
    case PushResult::kOk:
      return "ok";
    case PushResult::kFull:
      return "full";
    case PushResult::kClosed:
      return "closed";
  }
  return "unknown";
}

std::string_view PopResultName(PopResult result) {
  switch (result) {
    case PopResult::kOk:
      return "ok";
    case PopResult::kTimeout:
      return "timeout";
    case PopResult::kClosed:
      return "closed";
    case PopResult::kDropped:
      return "dropped";
  }
  return "unknown";
}

}  // namespace rlab
