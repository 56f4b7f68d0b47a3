#include "nas/pareto.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

namespace kdnas {

namespace {

bool dominates(const ParetoPoint& q, const ParetoPoint& p) {
  return q.latency_ms <= p.latency_ms && q.loss <= p.loss &&
         (q.latency_ms < p.latency_ms || q.loss < p.loss);
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Text for an SVG/XML element or attribute.
std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A CSV field: quoted when it holds a comma, quote or newline (architectures do: "2,32,2,64").
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

std::vector<size_t> pareto_front(const std::vector<ParetoPoint>& points) {
  // O(n^2) is fine: a search measures a few hundred candidates.
  std::vector<size_t> front;
  for (size_t i = 0; i < points.size(); ++i) {
    bool dominated = false;
    for (size_t j = 0; j < points.size() && !dominated; ++j)
      dominated = j != i && dominates(points[j], points[i]);
    if (!dominated) front.push_back(i);
  }
  std::stable_sort(front.begin(), front.end(), [&](size_t a, size_t b) {
    if (points[a].latency_ms != points[b].latency_ms)
      return points[a].latency_ms < points[b].latency_ms;
    return points[a].loss < points[b].loss;
  });
  return front;
}

std::string pareto_csv(const std::vector<ParetoPoint>& points, const std::vector<size_t>& front) {
  std::string out = "architecture,latency_ms,kd_loss,reward,parameters,non_embedding_parameters\n";
  for (size_t i : front) {
    const ParetoPoint& p = points.at(i);
    out += csv_field(p.name) + "," + fmt("%.9g", p.latency_ms) + "," + fmt("%.9g", p.loss) + "," +
           fmt("%.9g", p.reward) + "," + std::to_string(p.parameters) + "," +
           std::to_string(p.non_embedding) + "\n";
  }
  return out;
}

std::string pareto_json(const std::vector<ParetoPoint>& points, const std::vector<size_t>& front) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (size_t i : front) {
    const ParetoPoint& p = points.at(i);
    nlohmann::ordered_json r;
    r["architecture"] = p.name;
    r["latency_ms"] = p.latency_ms;
    r["kd_loss"] = p.loss;
    r["reward"] = p.reward;
    r["parameters"] = p.parameters;
    r["non_embedding_parameters"] = p.non_embedding;
    rows.push_back(r);
  }
  nlohmann::ordered_json j;
  j["objectives"] = {"latency_ms", "kd_loss"};
  j["front"] = rows;
  return j.dump(2) + "\n";
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (lo > hi) std::swap(lo, hi);
  if (hi - lo < 1e-12 * std::max(1.0, std::fabs(hi))) {
    const double pad = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, target - 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * mag;
  for (double m : {1.0, 2.0, 5.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  const long first = long(std::floor(lo / step + 1e-9)), last = long(std::ceil(hi / step - 1e-9));
  for (long k = first; k <= last; ++k) ticks.push_back(double(k) * step);
  if (ticks.size() < 2) ticks.push_back(ticks.back() + step);
  return ticks;
}

std::string pareto_svg(const std::vector<ParetoPoint>& points, const std::vector<size_t>& front,
                       const ParetoPlot& plot) {
  // Plot area inside a fixed canvas; data coordinates map linearly onto it.
  constexpr double W = 820, H = 520, left = 80, right = 30, top = 50, bottom = 60;
  double xmax = plot.teacher_ms, ymin = INFINITY, ymax = -INFINITY;
  for (double b : plot.budgets_ms) xmax = std::max(xmax, b);
  for (const ParetoPoint& p : points) {
    xmax = std::max(xmax, p.latency_ms);
    ymin = std::min(ymin, p.loss), ymax = std::max(ymax, p.loss);
  }
  if (!(xmax > 0)) xmax = 1;
  if (ymin > ymax) ymin = 0, ymax = 1;
  const std::vector<double> xt = nice_ticks(0, xmax * 1.02), yt = nice_ticks(ymin, ymax);
  const double x0 = xt.front(), x1 = xt.back(), y0 = yt.front(), y1 = yt.back();
  auto sx = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  auto sy = [&](double y) { return H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom); };
  auto num = [](double v) { return fmt("%.2f", v); };

  std::ostringstream s;
  s << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" viewBox=\"0 0 " << W << " " << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
    << "<rect x=\"0\" y=\"0\" width=\"" << W << "\" height=\"" << H << "\" fill=\"white\"/>\n"
    << "<text x=\"" << W / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">"
    << xml_escape(plot.title) << "</text>\n";
  // Axes, grid and ticks.
  s << "<g stroke=\"#ddd\">\n";
  for (double x : xt)
    s << "<line x1=\"" << num(sx(x)) << "\" y1=\"" << top << "\" x2=\"" << num(sx(x)) << "\" y2=\""
      << H - bottom << "\"/>\n";
  for (double y : yt)
    s << "<line x1=\"" << left << "\" y1=\"" << num(sy(y)) << "\" x2=\"" << W - right << "\" y2=\""
      << num(sy(y)) << "\"/>\n";
  s << "</g>\n<g stroke=\"black\">\n"
    << "<line x1=\"" << left << "\" y1=\"" << H - bottom << "\" x2=\"" << W - right << "\" y2=\""
    << H - bottom << "\"/>\n"
    << "<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\"" << H - bottom
    << "\"/>\n</g>\n<g>\n";
  for (double x : xt)
    s << "<text x=\"" << num(sx(x)) << "\" y=\"" << H - bottom + 18 << "\" text-anchor=\"middle\">"
      << fmt("%g", x) << "</text>\n";
  for (double y : yt)
    s << "<text x=\"" << left - 8 << "\" y=\"" << num(sy(y) + 4) << "\" text-anchor=\"end\">"
      << fmt("%g", y) << "</text>\n";
  s << "<text x=\"" << (left + W - right) / 2 << "\" y=\"" << H - 14 << "\" text-anchor=\"middle\">"
    << xml_escape(plot.x_label) << "</text>\n"
    << "<text x=\"18\" y=\"" << (top + H - bottom) / 2
    << "\" text-anchor=\"middle\" transform=\"rotate(-90 18 " << (top + H - bottom) / 2 << ")\">"
    << xml_escape(plot.y_label) << "</text>\n</g>\n";
  // The teacher and the budgets.
  auto vline = [&](double x, const char* color, const char* dash, const std::string& label) {
    s << "<line x1=\"" << num(sx(x)) << "\" y1=\"" << top << "\" x2=\"" << num(sx(x)) << "\" y2=\""
      << H - bottom << "\" stroke=\"" << color << "\" stroke-dasharray=\"" << dash
      << "\"/>\n<text x=\"" << num(sx(x) - 4) << "\" y=\"" << top + 12
      << "\" text-anchor=\"end\" fill=\"" << color << "\">" << xml_escape(label) << "</text>\n";
  };
  if (plot.teacher_ms > 0)
    vline(plot.teacher_ms, "#c00", "6 3", "teacher " + fmt("%.3g", plot.teacher_ms) + " ms");
  for (double b : plot.budgets_ms) vline(b, "#070", "2 3", "budget " + fmt("%g", b) + " ms");
  // Every candidate, then the front on top.
  s << "<g fill=\"#68a\" fill-opacity=\"0.6\">\n";
  for (const ParetoPoint& p : points)
    s << "<circle cx=\"" << num(sx(p.latency_ms)) << "\" cy=\"" << num(sy(p.loss))
      << "\" r=\"4\"><title>" << xml_escape(p.name) << ": " << fmt("%.4g", p.latency_ms)
      << " ms, loss " << fmt("%.4g", p.loss) << ", reward " << fmt("%.4g", p.reward)
      << "</title></circle>\n";
  s << "</g>\n<polyline fill=\"none\" stroke=\"#e60\" stroke-width=\"2\" points=\"";
  for (size_t k = 0; k < front.size(); ++k) {
    const ParetoPoint& p = points.at(front[k]);
    s << (k ? " " : "") << num(sx(p.latency_ms)) << "," << num(sy(p.loss));
  }
  s << "\"/>\n<g fill=\"#e60\">\n";
  for (size_t i : front)
    s << "<circle cx=\"" << num(sx(points[i].latency_ms)) << "\" cy=\"" << num(sy(points[i].loss))
      << "\" r=\"5\"><title>front: " << xml_escape(points[i].name) << "</title></circle>\n";
  s << "</g>\n</svg>\n";
  return s.str();
}

}  // namespace kdnas
