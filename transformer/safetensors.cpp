#include "transformer/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace kdnas {

// The format is little-endian and so is every machine kdnas targets; a big-endian port would
// have to byte-swap here.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes little-endian");

namespace {

using json = nlohmann::json;

// The safetensors dtypes, their element sizes, and the kdnas DType where one exists.
struct DtypeEntry {
  const char* name;
  size_t size;
  bool supported;
  DType dtype;
};
constexpr DtypeEntry kDtypes[] = {
    {"BOOL", 1, false, DType::U8},    {"U8", 1, true, DType::U8},
    {"I8", 1, true, DType::I8},       {"F8_E5M2", 1, false, DType::U8},
    {"F8_E4M3", 1, false, DType::U8}, {"I16", 2, false, DType::U8},
    {"U16", 2, false, DType::U8},     {"F16", 2, true, DType::F16},
    {"BF16", 2, true, DType::BF16},   {"I32", 4, true, DType::I32},
    {"U32", 4, false, DType::U8},     {"F32", 4, true, DType::F32},
    {"F64", 8, true, DType::F64},     {"I64", 8, true, DType::I64},
    {"U64", 8, false, DType::U8},
};

const DtypeEntry* find_dtype(const std::string& name) {
  for (const DtypeEntry& e : kDtypes)
    if (name == e.name) return &e;
  return nullptr;
}

// Deeper nesting than this cannot be a valid header (the deepest valid value is an offset
// inside an entry, depth 3); the limit keeps a hostile "[[[[..." from costing anything.
constexpr int kMaxJsonDepth = 32;

std::string json_type(const json& j) {
  return j.type_name();
}

// A JSON integer >= 0 (nlohmann stores those as number_unsigned; negatives are number_integer,
// and 2.0 or 1e3 are number_float, which a byte offset or a dimension must not be).
bool get_u64(const json& j, uint64_t* out) {
  if (!j.is_number_unsigned()) return false;
  *out = j.get<uint64_t>();
  return true;
}

}  // namespace

const char* safetensors_dtype_name(DType t) {
  for (const DtypeEntry& e : kDtypes)
    if (e.supported && e.dtype == t) return e.name;
  return "?";
}

size_t safetensors_dtype_size(const std::string& name) {
  const DtypeEntry* e = find_dtype(name);
  return e ? e->size : 0;
}

bool is_valid_utf8(const char* s, size_t n) {
  const auto* p = reinterpret_cast<const unsigned char*>(s);
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // Lead byte: number of continuation bytes, the payload bits it carries, and the smallest
    // code point that needs this length (anything smaller is an overlong encoding).
    int len;
    if ((c & 0xe0) == 0xc0) {
      len = 1;
    } else if ((c & 0xf0) == 0xe0) {
      len = 2;
    } else if ((c & 0xf8) == 0xf0) {
      len = 3;
    } else {
      return false;
    }
    static constexpr uint32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
    uint32_t cp = c & (0x3fu >> len);
    const uint32_t min = kMin[len];
    if (n - i <= size_t(len)) return false;
    for (int k = 1; k <= len; ++k) {
      unsigned cc = p[i + size_t(k)];
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += size_t(len) + 1;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Parsing

namespace {

// Parses the JSON text, rejecting duplicate keys (nlohmann would silently keep the last one,
// so a file could name one tensor twice with two different data ranges) and deep nesting.
json parse_header_json(const char* text, size_t n, const std::string& prefix) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  int depth = 0;
  std::string dup, dup_parent;
  auto cb = [&](int, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        [[fallthrough]];
      case json::parse_event_t::array_start:
        KDNAS_CHECK(++depth <= kMaxJsonDepth, prefix, "header nests deeper than ", kMaxJsonDepth,
                    " levels");
        break;
      case json::parse_event_t::object_end:
        keys.pop_back();
        [[fallthrough]];
      case json::parse_event_t::array_end:
        --depth;
        break;
      case json::parse_event_t::key: {
        const std::string& k = parsed.get_ref<const std::string&>();
        KDNAS_CHECK(keys.back().insert(k).second, prefix, "duplicate key '", k, "'",
                    keys.size() == 1 ? " (a tensor named twice)" : " inside an entry");
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return json::parse(text, text + n, cb);
  } catch (const json::exception& e) {
    detail::fail(detail::concat(prefix, "header is not valid JSON (", e.what(), ")"));
  }
}

TensorInfo parse_entry(const std::string& name, const json& v, const std::string& prefix) {
  const std::string where = prefix + "tensor '" + name + "': ";
  KDNAS_CHECK(v.is_object(), where, "entry must be an object, got ", json_type(v));
  for (const char* k : {"dtype", "shape", "data_offsets"})
    KDNAS_CHECK(v.contains(k), where, "entry has no \"", k, "\"");

  TensorInfo ti;
  ti.name = name;
  const json& dt = v["dtype"];
  KDNAS_CHECK(dt.is_string(), where, "dtype must be a string, got ", json_type(dt));
  ti.dtype_name = dt.get<std::string>();
  const DtypeEntry* e = find_dtype(ti.dtype_name);
  KDNAS_CHECK(e, where, "unknown dtype '", ti.dtype_name,
              "' (known: BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 BF16 I32 U32 F32 F64 I64 U64)");
  ti.supported = e->supported;
  ti.dtype = e->dtype;

  // Overflow is checked on the product of the dimensions with zeros counted as one: that
  // product bounds both the element count and every stride of the contiguous layout, which
  // Shape holds in int64. So [2^40, 2^40, 0] and [0, 2^40, 2^40] are rejected, although they
  // hold no elements, rather than overflowing a stride later.
  const json& sh = v["shape"];
  KDNAS_CHECK(sh.is_array(), where, "shape must be an array, got ", json_type(sh));
  uint64_t numel = 1, span = 1;
  for (const json& d : sh) {
    uint64_t n;
    KDNAS_CHECK(get_u64(d, &n), where, "shape entries must be non-negative integers, got ",
                d.dump());
    KDNAS_CHECK(!__builtin_mul_overflow(span, std::max<uint64_t>(n, 1), &span) &&
                    span <= uint64_t(std::numeric_limits<int64_t>::max()),
                where, "the element count of shape ", sh.dump(), " overflows");
    numel *= n;  // <= span: no overflow
    ti.shape.push_back(int64_t(n));
  }
  uint64_t nbytes;
  KDNAS_CHECK(!__builtin_mul_overflow(numel, uint64_t(e->size), &nbytes), where,
              "the byte size of shape ", sh.dump(), " overflows");

  const json& off = v["data_offsets"];
  KDNAS_CHECK(
      off.is_array() && off.size() == 2 && get_u64(off[0], &ti.begin) && get_u64(off[1], &ti.end),
      where, "data_offsets must be two non-negative integers [begin, end], got ", off.dump());
  KDNAS_CHECK(ti.begin <= ti.end, where, "data_offsets [", ti.begin, ", ", ti.end,
              "] end before they begin");
  KDNAS_CHECK(ti.end - ti.begin == nbytes, where, "wrong byte count: ", ti.dtype_name, " ",
              ti.shape, " needs ", nbytes, " bytes but data_offsets [", ti.begin, ", ", ti.end,
              "] span ", ti.end - ti.begin);
  return ti;
}

// The entries must tile [0, data_size) exactly: sorted by offset, each begins where the
// previous one ended. A gap would be bytes nobody owns (a sign of a corrupt or spliced file);
// an overlap would let two tensors alias the same bytes.
void check_tiling(std::vector<TensorInfo>& ts, uint64_t data_size, const std::string& prefix) {
  std::stable_sort(ts.begin(), ts.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const TensorInfo& t = ts[i];
    KDNAS_CHECK(t.begin >= pos, prefix, "tensors '", ts[i - 1].name, "' and '", t.name,
                "' overlap (bytes [", ts[i - 1].begin, ", ", ts[i - 1].end, ") and [", t.begin,
                ", ", t.end, "))");
    KDNAS_CHECK(t.begin == pos, prefix, "gap in the data: bytes [", pos, ", ", t.begin,
                ") belong to no tensor (the next tensor is '", t.name, "')");
    KDNAS_CHECK(t.end <= data_size, prefix, "tensor '", t.name, "' ends at data byte ", t.end,
                " but the data has only ", data_size, " bytes (truncated file?)");
    pos = t.end;
  }
  KDNAS_CHECK(pos == data_size, prefix, "the data has ", data_size, " bytes but the tensors cover ",
              pos, ": bytes [", pos, ", ", data_size, ") belong to no tensor");
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const void* bytes, size_t size,
                                           const std::string& what) {
  const std::string prefix = "safetensors: " + what + ": ";
  const auto* p = static_cast<const uint8_t*>(bytes);
  KDNAS_CHECK(size >= 8, prefix, "truncated: the file is ", size,
              " bytes, too short for the 8-byte header length");
  SafetensorsHeader h;
  std::memcpy(&h.header_len, p, 8);  // little-endian u64
  KDNAS_CHECK(h.header_len <= kSafetensorsMaxHeader, prefix, "header length ", h.header_len,
              " exceeds the limit of ", kSafetensorsMaxHeader, " bytes");
  KDNAS_CHECK(h.header_len <= size - 8, prefix, "header length ", h.header_len,
              " runs past the end of the file (", size, " bytes)");
  h.data_start = 8 + h.header_len;
  h.data_size = size - h.data_start;

  const char* text = reinterpret_cast<const char*>(p + 8);
  KDNAS_CHECK(is_valid_utf8(text, h.header_len), prefix, "header is not valid UTF-8");
  json j = parse_header_json(text, h.header_len, prefix);
  KDNAS_CHECK(j.is_object(), prefix, "header must be a JSON object, got ", json_type(j));

  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      const json& m = it.value();
      if (m.is_null()) continue;  // what Python writers produce for "no metadata"
      KDNAS_CHECK(m.is_object(), prefix, "__metadata__ must be an object of strings, got ",
                  json_type(m));
      for (auto mi = m.begin(); mi != m.end(); ++mi) {
        KDNAS_CHECK(mi.value().is_string(), prefix,
                    "__metadata__ must map strings to strings, but '", mi.key(), "' is a ",
                    json_type(mi.value()));
        h.metadata[mi.key()] = mi.value().get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(parse_entry(it.key(), it.value(), prefix));
  }
  check_tiling(h.tensors, h.data_size, prefix);
  return h;
}

// ---------------------------------------------------------------------------------------------
// Reading

namespace {

// Owns one mmap of a whole file; shared by the SafetensorsFile and its zero-copy tensors.
struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr) munmap(addr, size);
  }
};

std::string errno_str() {
  return std::strerror(errno);
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  const std::string prefix = "safetensors: " + path + ": ";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  KDNAS_CHECK(fd >= 0, prefix, "cannot open (", errno_str(), ")");
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    detail::fail(prefix + "not a regular file");
  }
  const size_t size = size_t(st.st_size);
  auto map = std::make_shared<Mapping>();
  std::vector<uint8_t> small;  // files too short to hold a header: parsed from a copy
  const uint8_t* base;
  if (size < 8) {
    small.resize(size);
    ssize_t got = size ? ::read(fd, small.data(), size) : 0;
    ::close(fd);
    KDNAS_CHECK(got == ssize_t(size), prefix, "cannot read (", errno_str(), ")");
    base = small.data();
  } else {
    // MAP_PRIVATE + PROT_WRITE: tensors handed out are writable, and a write copies the page
    // instead of faulting or reaching the file. Untouched pages cost no memory beyond the page
    // cache, which is what makes loading a checkpoint zero-copy.
    void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    int err = errno;
    ::close(fd);  // the mapping keeps the file open
    KDNAS_CHECK(addr != MAP_FAILED, prefix, "cannot mmap ", size, " bytes (", std::strerror(err),
                ")");
    map->addr = addr;
    map->size = size;
    base = static_cast<const uint8_t*>(addr);
  }

  SafetensorsFile f;
  f.path_ = path;
  f.header_ = parse_safetensors_header(base, size, path);  // throws for files < 8 bytes
  f.base_ = base;
  f.mapping_ = std::move(map);
  for (size_t i = 0; i < f.header_.tensors.size(); ++i) f.index_[f.header_.tensors[i].name] = i;
  return f;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> v;
  for (const auto& [name, i] : index_) v.push_back(name);
  return v;
}

bool SafetensorsFile::contains(const std::string& name) const {
  return index_.count(name) != 0;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  KDNAS_CHECK(it != index_.end(), "safetensors: ", path_, ": no tensor named '", name, "' (",
              index_.size(), " tensors in the file)");
  return header_.tensors[it->second];
}

bool SafetensorsFile::is_zero_copy(const std::string& name) const {
  const TensorInfo& ti = info(name);
  const size_t align = safetensors_dtype_size(ti.dtype_name);
  return ti.supported && reinterpret_cast<uintptr_t>(data_of(ti)) % align == 0;
}

Tensor SafetensorsFile::get(const std::string& name) const {
  const TensorInfo& ti = info(name);
  KDNAS_CHECK(ti.supported, "safetensors: ", path_, ": tensor '", name, "' has dtype ",
              ti.dtype_name,
              ", which kdnas cannot load (supported: F32 F64 BF16 F16 I32 I64 I8 U8)");
  // Zero-copy needs only the dtype's natural alignment. Files we write are always aligned;
  // others may not be (the format does not require it), and then a copy is the safe answer.
  if (is_zero_copy(name))
    return Tensor::from_external(const_cast<uint8_t*>(data_of(ti)), ti.shape, ti.dtype, mapping_);
  Tensor t = Tensor::empty(ti.shape, ti.dtype);
  if (ti.end > ti.begin) std::memcpy(t.raw_data(), data_of(ti), ti.end - ti.begin);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Writing

void write_file_atomically(const std::string& path,
                           const std::vector<std::pair<const void*, size_t>>& chunks,
                           const std::string& op) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      path + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  const std::string prefix = op + ": cannot write '" + path + "': ";
  // O_EXCL: never clobber someone else's temporary; mode 0666 lets the umask decide, as for
  // any new file.
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  KDNAS_CHECK(fd >= 0, prefix, errno_str());
  auto fail = [&](const std::string& why) {
    ::close(fd);
    ::unlink(tmp.c_str());
    detail::fail(prefix + why);
  };
  for (const auto& [data, n] : chunks) {
    const char* p = static_cast<const char*>(data);
    size_t left = n;
    while (left > 0) {  // write() may write less than asked (and does above 2 GiB)
      ssize_t w = ::write(fd, p, left);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail(errno_str());
      p += w;
      left -= size_t(w);
    }
  }
  // fsync before rename: otherwise a crash can leave the new name pointing at an empty file.
  if (fsync(fd) != 0) fail(errno_str());
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    detail::fail(prefix + errno_str());
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = errno_str();
    ::unlink(tmp.c_str());
    detail::fail(prefix + why);
  }
  // Persist the rename itself. Best effort: some file systems refuse fsync on a directory.
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    ::close(dfd);
  }
}

namespace {

struct WriteEntry {
  std::string name;
  Tensor t;  // contiguous, CPU
};

// Checks names, makes every tensor contiguous on the CPU and sorts by descending alignment
// then name: with the header padded to 8 bytes, every tensor then starts aligned for its dtype.
std::vector<WriteEntry> prepare(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                const std::map<std::string, std::string>& metadata) {
  std::vector<WriteEntry> es;
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    KDNAS_CHECK(name != "__metadata__",
                "write_safetensors: '__metadata__' is reserved and cannot "
                "name a tensor");
    KDNAS_CHECK(is_valid_utf8(name.data(), name.size()),
                "write_safetensors: tensor name is not valid UTF-8");
    KDNAS_CHECK(seen.insert(name).second, "write_safetensors: duplicate tensor name '", name, "'");
    KDNAS_CHECK(t.defined(), "write_safetensors: tensor '", name, "' is undefined");
    Tensor c = t.device().is_cpu() ? t : t.to(cpu_device());
    es.push_back({name, c.contiguous()});
  }
  for (const auto& [k, v] : metadata)
    KDNAS_CHECK(is_valid_utf8(k.data(), k.size()) && is_valid_utf8(v.data(), v.size()),
                "write_safetensors: metadata entry '", k, "' is not valid UTF-8");
  std::sort(es.begin(), es.end(), [](const WriteEntry& a, const WriteEntry& b) {
    size_t sa = a.t.element_size(), sb = b.t.element_size();
    return sa != sb ? sa > sb : a.name < b.name;
  });
  return es;
}

std::string header_bytes(const std::vector<WriteEntry>& es,
                         const std::map<std::string, std::string>& metadata) {
  // Written by hand rather than through nlohmann::json, whose objects sort their keys: the
  // reference writer puts dtype, shape, data_offsets in that order, and so do we (the golden
  // 64-byte header in DATA.md depends on it). json::dump is used only to escape strings.
  std::string s = "{";
  if (!metadata.empty()) {
    s += "\"__metadata__\":{";
    for (const auto& [k, v] : metadata) {
      if (s.back() != '{') s += ',';
      s += json(k).dump();
      s += ':';
      s += json(v).dump();
    }
    s += '}';
  }
  uint64_t off = 0;
  for (const WriteEntry& e : es) {
    if (s.back() != '{') s += ',';
    s += json(e.name).dump();
    s += ":{\"dtype\":\"";
    s += safetensors_dtype_name(e.t.dtype());
    s += "\",\"shape\":[";
    for (int64_t d = 0; d < e.t.dim(); ++d) {
      if (d) s += ',';
      s += std::to_string(e.t.size(d));
    }
    s += "],\"data_offsets\":[";
    s += std::to_string(off);
    s += ',';
    s += std::to_string(off + e.t.nbytes());
    s += "]}";
    off += e.t.nbytes();
  }
  s += '}';
  s.append((8 - s.size() % 8) % 8, ' ');
  KDNAS_CHECK(s.size() <= kSafetensorsMaxHeader, "write_safetensors: the header would be ",
              s.size(), " bytes, over the format's limit of ", kSafetensorsMaxHeader);
  uint64_t n = s.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + s;
}

}  // namespace

std::string safetensors_header_bytes(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                     const std::map<std::string, std::string>& metadata) {
  return header_bytes(prepare(tensors, metadata), metadata);
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<WriteEntry> es = prepare(tensors, metadata);
  const std::string header = header_bytes(es, metadata);
  std::vector<std::pair<const void*, size_t>> chunks{{header.data(), header.size()}};
  for (const WriteEntry& e : es) chunks.push_back({e.t.raw_data(), e.t.nbytes()});
  write_file_atomically(path, chunks, "write_safetensors");
}

}  // namespace kdnas
