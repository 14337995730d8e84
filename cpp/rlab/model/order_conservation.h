#ifndef RLAB_MODEL_ORDER_CONSERVATION_H_
#define RLAB_MODEL_ORDER_CONSERVATION_H_

// Conservation of orders, the engines' first invariant: every arrived order is either in flight
// or in exactly one terminal state (arrived = terminal + in flight).

#include <array>
#include <cstdint>

#include "rlab/model/order_flow.h"

namespace rlab {

// The orders counted in a terminal state.
inline int64_t TerminalOrders(const std::array<int64_t, kNumOrderStatuses>& by_status) {
  int64_t n = 0;
  for (int i = 0; i < kNumOrderStatuses; ++i) {
    if (IsTerminal(static_cast<OrderStatus>(i))) n += by_status[static_cast<size_t>(i)];
  }
  return n;
}

}  // namespace rlab

#endif  // RLAB_MODEL_ORDER_CONSERVATION_H_
