#include "penalty_driver.h"

#include <algorithm>
#include <vector>

#include "../common/penalty_element.h"
#include "isa.h"
#include "parallel.h"

namespace rdf {
namespace cpu {
namespace {

// The items that take part in a call, laid end to end in list order and cut into tasks of
// kPenaltyTaskElems elements (the last one shorter).
class Concatenation {
 public:
  template <class Item, class Takes>
  Concatenation(const Item* items, int64_t count, Takes takes_part) {
    starts_.push_back(0);
    for (int64_t i = 0; i < count; ++i) {
      if (items[i].n == 0 || !takes_part(items[i])) continue;
      index_.push_back(i);
      starts_.push_back(starts_.back() + items[i].n);
    }
  }

  int64_t tasks() const { return (starts_.back() + kPenaltyTaskElems - 1) / kPenaltyTaskElems; }

  // Calls segment(item index, begin, end) for the pieces of task t, in list order.
  template <class Segment>
  void for_each_segment(int64_t t, Segment segment) const {
    const int64_t lo = t * kPenaltyTaskElems;
    const int64_t hi = std::min(lo + kPenaltyTaskElems, starts_.back());
    // The last participating item that starts at or before lo.
    const auto after = std::upper_bound(starts_.begin(), starts_.end() - 1, lo);
    size_t k = static_cast<size_t>(after - starts_.begin()) - 1;
    for (; k < index_.size() && starts_[k] < hi; ++k) {
      const int64_t begin = std::max(lo, starts_[k]) - starts_[k];
      const int64_t end = std::min(hi, starts_[k + 1]) - starts_[k];
      segment(index_[k], begin, end);
    }
  }

 private:
  std::vector<int64_t> index_;   // item index of each participating item
  std::vector<int64_t> starts_;  // where each begins in the concatenation; back() = total elements
};

// Runs task(t) for every t; one task runs on the calling thread without touching the pool.
template <class Task>
void run_tasks(int64_t n_tasks, const Task& task) {
  if (n_tasks == 1) {
    task(0);
  } else if (n_tasks > 1) {
    parallel_for(n_tasks, task);
  }
}

// Sums range(item, begin, end) over every segment of every task: each task adds its segments in list order
// into its own slot, the slots are then added in task order, so the result is the same bits for any
// number of threads.
template <class Acc, class Item, class Range>
Acc sum_over_tasks(const Concatenation& parts, const Item* items, Range range) {
  std::vector<Acc> partial(static_cast<size_t>(parts.tasks()), Acc{0});
  run_tasks(parts.tasks(), [&](int64_t t) {
    Acc acc{0};
    parts.for_each_segment(t, [&](int64_t i, int64_t b, int64_t e) { acc += range(items[i], b, e); });
    partial[static_cast<size_t>(t)] = acc;
  });
  Acc total{0};
  for (Acc v : partial) total += v;
  return total;
}

// The tasks of one penalty_grad call: the concatenation's tasks first, then each group item's SliceSplit
// tasks, items in list order, all on one parallel_for. One pool wake-up per call instead of one per group
// item, and the two threads share the small arrays (a single task each) and the odd last task of an array
// instead of waiting for each other at every array. The cut and the order of the partial sums are those of
// one item at a time, so the value is the same bits.
class GroupTasks {
 public:
  GroupTasks(const PenaltyItem* items, int64_t count) {
    starts_.push_back(0);
    for (int64_t i = 0; i < count; ++i) {
      if (items[i].group == 0.0) continue;
      const SliceSplit split(items[i].outer, items[i].reduce, items[i].inner);
      if (split.tasks == 0) continue;
      index_.push_back(i);
      splits_.push_back(split);
      starts_.push_back(starts_.back() + split.tasks);
    }
  }
  int64_t tasks() const { return starts_.back(); }
  // Task t: its item's index, its split and the task number within the item.
  int64_t item(int64_t t, const SliceSplit*& split, int64_t& local) const {
    const auto after = std::upper_bound(starts_.begin(), starts_.end(), t);
    const size_t k = static_cast<size_t>(after - starts_.begin()) - 1;
    split = &splits_[k];
    local = t - starts_[k];
    return index_[k];
  }

 private:
  std::vector<int64_t> index_;
  std::vector<SliceSplit> splits_;
  std::vector<int64_t> starts_;  // first task of each group item; back() = all group tasks
};

}  // namespace

double penalty_grad(const PenaltyItem* items, int64_t count) {
  const auto range = RDF_ACTIVE_ISA_KERNEL(penalty_grad_range);
  const auto groups = RDF_ACTIVE_ISA_KERNEL(penalty_group_range);
  const Concatenation parts(items, count, [](const PenaltyItem& it) {
    return it.group == 0.0 && penalty_terms(it.l1, it.l2) != PenaltyTerms::kNone;
  });
  const GroupTasks grouped(items, count);
  const int64_t flat = parts.tasks();
  std::vector<double> partial(static_cast<size_t>(flat + grouped.tasks()), 0.0);
  run_tasks(flat + grouped.tasks(), [&](int64_t t) {
    double acc = 0.0;
    if (t < flat) {
      parts.for_each_segment(t, [&](int64_t i, int64_t b, int64_t e) { acc += range(items[i], b, e); });
    } else {
      const SliceSplit* split;
      int64_t local, a0, a1, b0, b1;
      const PenaltyItem& it = items[grouped.item(t - flat, split, local)];
      split->task(local, a0, a1, b0, b1);
      std::vector<double> scratch(static_cast<size_t>(split->scratch()));
      acc = groups(it, a0, a1, b0, b1, scratch.data());
    }
    partial[static_cast<size_t>(t)] = acc;
  });
  double total = 0.0;  // in task order: the concatenation's (sum_over_tasks), then one group item at a time
  for (double v : partial) total += v;
  return total;
}

int64_t prox_l1(const UpdateItem* items, int64_t count) {
  const auto range = RDF_ACTIVE_ISA_KERNEL(prox_l1_range);
  const Concatenation parts(items, count, [](const UpdateItem&) { return true; });
  return sum_over_tasks<int64_t>(parts, items, range);
}

int64_t non_neg(const UpdateItem* items, int64_t count) {
  const auto range = RDF_ACTIVE_ISA_KERNEL(non_neg_range);
  const Concatenation parts(items, count, [](const UpdateItem&) { return true; });
  return sum_over_tasks<int64_t>(parts, items, range);
}

void decay(const UpdateItem* items, int64_t count) {
  const auto range = RDF_ACTIVE_ISA_KERNEL(decay_range);
  const Concatenation parts(items, count, [](const UpdateItem& it) { return it.coef != 0.0; });
  run_tasks(parts.tasks(), [&](int64_t t) {
    parts.for_each_segment(t, [&](int64_t i, int64_t b, int64_t e) { range(items[i], b, e); });
  });
}

SliceSplit::SliceSplit(int64_t o, int64_t r, int64_t i) : outer(o), reduce(r), inner(i) {
  if (o == 0 || r == 0 || i == 0) return;  // no slices, or all of them empty
  if (i == 1) {
    per_task = std::max<int64_t>(1, kPenaltyTaskElems / r);
    tasks = (o + per_task - 1) / per_task;
    return;
  }
  width = std::max<int64_t>(kSumLanes, kPenaltyTaskElems / r);
  width = (width + kSumLanes - 1) / kSumLanes * kSumLanes;
  width = std::min(width, i);
  bands = (i + width - 1) / width;
  blocks_per_task = bands > 1 ? 1 : std::max<int64_t>(1, kPenaltyTaskElems / (r * i));
  tasks = (o + blocks_per_task - 1) / blocks_per_task * bands;
}

void SliceSplit::task(int64_t t, int64_t& a0, int64_t& a1, int64_t& b0, int64_t& b1) const {
  if (rows()) {
    a0 = t * per_task;
    a1 = std::min(outer, a0 + per_task);
    b0 = 0;
    b1 = 1;
    return;
  }
  a0 = t / bands * blocks_per_task;
  a1 = std::min(outer, a0 + blocks_per_task);
  b0 = (t % bands) * width;
  b1 = std::min(inner, b0 + width);
}

int64_t max_norm(const MaxNormProblem& p) {
  const SliceSplit split(p.outer, p.reduce, p.inner);
  std::vector<int64_t> rescaled(static_cast<size_t>(split.tasks), 0);
  if (split.rows()) {
    const auto rows = RDF_ACTIVE_ISA_KERNEL(max_norm_rows);
    run_tasks(split.tasks, [&](int64_t t) {
      int64_t a0, a1, b0, b1;
      split.task(t, a0, a1, b0, b1);
      rescaled[static_cast<size_t>(t)] = rows(p, a0, a1);
    });
  } else {
    const auto columns = RDF_ACTIVE_ISA_KERNEL(max_norm_columns);
    run_tasks(split.tasks, [&](int64_t t) {
      int64_t a0, a1, b0, b1;
      split.task(t, a0, a1, b0, b1);
      std::vector<double> scratch(static_cast<size_t>(split.scratch()));  // lane sums, factors
      int64_t count = 0;
      for (int64_t a = a0; a < a1; ++a) count += columns(p, a, b0, b1, scratch.data());
      rescaled[static_cast<size_t>(t)] = count;
    });
  }
  int64_t total = 0;
  for (int64_t r : rescaled) total += r;
  return total;
}

}  // namespace cpu
}  // namespace rdf
