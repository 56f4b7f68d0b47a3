// The Pareto front of a search: candidates not dominated in (latency, loss), both minimised, and
// its three files: pareto.csv and pareto.json (the front) and pareto.svg (every candidate as a
// point, the front as a line, the teacher's latency and the budgets as vertical lines).
//
// Dominance: q dominates p when q.latency_ms <= p.latency_ms and q.loss <= p.loss with at least
// one of the two strictly smaller. Two candidates at exactly the same point do not dominate each
// other, so both stay on the front.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kdnas {

struct ParetoPoint {
  std::string name;       // "L,H,A,F"
  double latency_ms = 0;  // x, minimised
  double loss = 0;        // y, minimised
  double reward = 0;
  int64_t parameters = 0, non_embedding = 0;
};

// Indices of the non-dominated points, ordered by latency, then loss, then index.
std::vector<size_t> pareto_front(const std::vector<ParetoPoint>& points);

// The front as CSV: a header line, then one row per front point in front order.
std::string pareto_csv(const std::vector<ParetoPoint>& points, const std::vector<size_t>& front);
// The front as a JSON object: {"front": [{"architecture":..., "latency_ms":..., ...}, ...]}.
std::string pareto_json(const std::vector<ParetoPoint>& points, const std::vector<size_t>& front);

struct ParetoPlot {
  std::string title = "KD-NAS candidates";
  double teacher_ms = 0;           // > 0: a vertical line
  std::vector<double> budgets_ms;  // a vertical line each
  std::string x_label = "latency (ms)", y_label = "proxy KD loss";
};
// A self-contained SVG (no scripts, no external files): every point as a circle with a <title>
// tooltip, the front as a polyline, axes with ticks and labels.
std::string pareto_svg(const std::vector<ParetoPoint>& points, const std::vector<size_t>& front,
                       const ParetoPlot& plot = {});

// Tick positions for an axis over [lo, hi]: multiples of 1, 2 or 5 x 10^k, about `target` of
// them, covering the range. Returns at least two ticks; lo == hi is widened first.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

}  // namespace kdnas
