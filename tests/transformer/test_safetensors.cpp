#include <doctest/doctest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/test_util.h"
#include "transformer/safetensors.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// A fresh directory per test, removed afterwards.
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &n, 8);
  return s;
}

// A file by hand: 8-byte length, header text, data (`len` overrides the length field).
std::string make_file(const std::string& header, const std::string& data, int64_t len = -1) {
  return le64(len < 0 ? header.size() : uint64_t(len)) + header + data;
}

// The bytes of n little-endian f32 values 0, 1, 2, ...
std::string f32_ramp(int n) {
  std::string s(size_t(n) * 4, '\0');
  for (int i = 0; i < n; ++i) {
    float v = float(i);
    std::memcpy(&s[size_t(i) * 4], &v, 4);
  }
  return s;
}

// Writes `bytes` to a file and CHECKs that opening it fails with a message naming the file and
// containing every part.
void check_open_fails(const TempDir& dir, const std::string& bytes,
                      const std::vector<std::string>& parts) {
  const std::string path = dir.file("bad.safetensors");
  write_bytes(path, bytes);
  std::vector<std::string> all = parts;
  all.push_back(path);
  check_throws_with([&] { SafetensorsFile::open(path); }, all);
}

// Bit-exact comparison (also for NaN-free floats of any width).
bool same_bytes(const Tensor& a, const Tensor& b) {
  Tensor ca = a.contiguous(), cb = b.contiguous();
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

}  // namespace

TEST_SUITE("transformer") {
TEST_CASE("safetensors: golden bytes of DATA.md's 64-byte header example") {
  TempDir dir;
  const std::string path = dir.file("golden.safetensors");
  Tensor t = Tensor::arange(6).view({1, 2, 3});
  write_safetensors(path, {{"attn.0", t}});

  const std::string json = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  REQUIRE(json.size() <= 64);
  const std::string want = le64(64) + json + std::string(64 - json.size(), ' ') + f32_ramp(6);
  const std::string got = read_file(path);
  CHECK(got.size() == 96);
  CHECK(got == want);
  CHECK(safetensors_header_bytes({{"attn.0", t}}) == want.substr(0, 72));

  // And the golden bytes, built by hand, read back.
  write_bytes(path, want);
  SafetensorsFile f = SafetensorsFile::open(path);
  CHECK(f.names() == std::vector<std::string>{"attn.0"});
  const TensorInfo& ti = f.info("attn.0");
  CHECK(ti.dtype_name == "F32");
  CHECK(ti.shape == Shape{1, 2, 3});
  CHECK(ti.begin == 0);
  CHECK(ti.end == 24);
  CHECK(f.get("attn.0").to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 5});
  CHECK(f.metadata().empty());
}

TEST_CASE("safetensors: round trip of every supported dtype, with metadata") {
  TempDir dir;
  const std::string path = dir.file("all.safetensors");
  Rng rng(3);
  std::vector<std::pair<std::string, Tensor>> ts;
  const DType dtypes[] = {DType::F32, DType::F64, DType::BF16, DType::F16,
                          DType::I32, DType::I64, DType::I8,   DType::U8};
  for (DType dt : dtypes) {
    const std::string n = dtype_name(dt);
    // Integers get integral values in their range; floats any values.
    Tensor x = is_floating(dt) ? random_tensor({3, 5}, rng, DType::F32, -3.f, 3.f).to(dt)
                               : random_tensor({3, 5}, rng, DType::F32, 0.f, 100.f).to(dt);
    ts.push_back({"w." + n, x});
    ts.push_back({"s." + n, Tensor::full({}, 7, dt)});    // scalar, shape []
    ts.push_back({"e." + n, Tensor::empty({0, 4}, dt)});  // zero elements
  }
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "héllo \"q\""}};
  write_safetensors(path, ts, meta);

  SafetensorsFile f = SafetensorsFile::open(path);
  CHECK(f.names().size() == ts.size());
  CHECK(f.metadata() == meta);
  for (const auto& [name, want] : ts) {
    INFO(name);
    REQUIRE(f.contains(name));
    CHECK(f.info(name).supported);
    Tensor got = f.get(name);
    CHECK(got.dtype() == want.dtype());
    CHECK(got.shape() == want.shape());
    CHECK(same_bytes(got, want));
    CHECK(f.is_zero_copy(name));  // our writer aligns every tensor
  }
  CHECK(!f.contains("nope"));
  check_throws_with([&] { f.get("nope"); }, {"safetensors", path, "no tensor named 'nope'"});
}

TEST_CASE("safetensors: writer orders by descending alignment then name; pads to 8") {
  std::vector<std::pair<std::string, Tensor>> ts{
      {"b", Tensor::zeros({3}, DType::U8)},  {"a", Tensor::zeros({1}, DType::F32)},
      {"z", Tensor::zeros({2}, DType::I64)}, {"c", Tensor::zeros({1}, DType::BF16)},
      {"0", Tensor::zeros({2}, DType::F32)}, {"y", Tensor::zeros({1}, DType::F64)}};
  const std::string h = safetensors_header_bytes(ts, {{"k", "v"}});
  uint64_t n;
  std::memcpy(&n, h.data(), 8);
  CHECK(n % 8 == 0);
  CHECK(h.size() == 8 + n);
  const std::string json = h.substr(8);
  // Data order: y (F64), z (I64), 0, a (F32), c (BF16), b (U8); metadata first in the header.
  const std::vector<std::string> order{"__metadata__", "\"y\"", "\"z\"", "\"0\"",
                                       "\"a\"",        "\"c\"", "\"b\""};
  size_t pos = 0;
  for (const std::string& k : order) {
    INFO(k);
    size_t p = json.find(k, pos);
    CHECK(p != std::string::npos);
    pos = p;
  }
  CHECK(json.find(R"("y":{"dtype":"F64","shape":[1],"data_offsets":[0,8]})") != std::string::npos);
  CHECK(json.find(R"("b":{"dtype":"U8","shape":[3],"data_offsets":[38,41]})") != std::string::npos);
}

TEST_CASE("safetensors: aligned tensors are zero-copy views that outlive the file object") {
  TempDir dir;
  const std::string path = dir.file("zc.safetensors");
  Tensor w = Tensor::arange(12).view({3, 4});
  write_safetensors(path, {{"w", w}, {"v", Tensor::arange(5).to(DType::I64)}});
  Tensor got, again;
  {
    SafetensorsFile f = SafetensorsFile::open(path);
    CHECK(f.is_zero_copy("w"));
    got = f.get("w");
    again = f.get("w");
    CHECK(got.raw_data() == again.raw_data());  // both views of the mapping, no copy
    CHECK(reinterpret_cast<uintptr_t>(got.raw_data()) % 4 == 0);
  }
  // The file object is gone; the tensors keep the mapping alive.
  CHECK(got.to_vector<float>() == w.to_vector<float>());
  // Writes go to a private copy of the page, never to the file.
  got.fill_(-1);
  CHECK(again.at({0, 0}) == -1);  // same mapping
  CHECK(SafetensorsFile::open(path).get("w").to_vector<float>() == w.to_vector<float>());
}

TEST_CASE("safetensors: unaligned tensors are copied") {
  TempDir dir;
  // Header length 8k + 1: the data starts at file offset 8k + 9, so "x" (data byte 1) starts
  // at 8k + 10, which is not 4-byte aligned.
  std::string json = R"({"u8":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                     R"("x":{"dtype":"F32","shape":[3],"data_offsets":[1,13]}})";
  json.append((8 - json.size() % 8) % 8 + 1, ' ');
  REQUIRE(json.size() % 8 == 1);
  std::string data(1, '\x07');
  data += f32_ramp(3);
  const std::string path = dir.file("unaligned.safetensors");
  write_bytes(path, make_file(json, data));
  SafetensorsFile f = SafetensorsFile::open(path);
  CHECK(f.is_zero_copy("u8"));
  CHECK(!f.is_zero_copy("x"));
  Tensor x = f.get("x");
  CHECK(reinterpret_cast<uintptr_t>(x.raw_data()) % 64 == 0);  // a fresh allocation
  CHECK(x.to_vector<float>() == std::vector<float>{0, 1, 2});
  CHECK(f.get("u8").item() == 7);
}

TEST_CASE("safetensors: strided and non-f32 inputs are written row-major") {
  TempDir dir;
  const std::string path = dir.file("strided.safetensors");
  Tensor base = Tensor::arange(6).view({2, 3});
  Tensor tr = base.transpose(0, 1);  // [3, 2], not contiguous
  write_safetensors(path, {{"t", tr}});
  Tensor got = SafetensorsFile::open(path).get("t");
  CHECK(got.shape() == Shape{3, 2});
  CHECK(got.to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
}

TEST_CASE("safetensors: writes are atomic replacements and leave no temporary files") {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  write_safetensors(path, {{"x", Tensor::full({4}, 1.0)}});
  SafetensorsFile old = SafetensorsFile::open(path);
  Tensor old_x = old.get("x");
  write_safetensors(path, {{"x", Tensor::full({4}, 2.0)}, {"y", Tensor::zeros({2})}});
  // The old mapping still sees the old file: the new one was renamed over it, not written
  // into it.
  CHECK(old_x.to_vector<float>() == std::vector<float>{1, 1, 1, 1});
  SafetensorsFile now = SafetensorsFile::open(path);
  CHECK(now.get("x").to_vector<float>() == std::vector<float>{2, 2, 2, 2});
  CHECK(now.contains("y"));
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) files += e.is_regular_file();
  CHECK(files == 1);
  // A directory that does not exist: a clear error, nothing left behind.
  check_throws_with([&] { write_safetensors(dir.file("no/such/dir.safetensors"), {}); },
                    {"write_safetensors", "cannot write", "no/such/dir.safetensors"});
}

TEST_CASE("safetensors: a header with no tensors is a valid empty file") {
  TempDir dir;
  const std::string path = dir.file("empty.safetensors");
  write_safetensors(path, {});
  CHECK(read_file(path) == le64(8) + "{}      ");
  SafetensorsFile f = SafetensorsFile::open(path);
  CHECK(f.names().empty());
  // __metadata__ may be null, as some Python writers produce.
  write_bytes(path, make_file(R"({"__metadata__":null})", ""));
  CHECK(SafetensorsFile::open(path).metadata().empty());
}

TEST_CASE("safetensors: unsupported dtypes are listed but not loaded") {
  TempDir dir;
  const std::string path = dir.file("u16.safetensors");
  const std::string json = R"({"a":{"dtype":"U16","shape":[2],"data_offsets":[0,4]},)"
                           R"("b":{"dtype":"BOOL","shape":[3],"data_offsets":[4,7]},)"
                           R"("c":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[7,8]}})";
  write_bytes(path, make_file(json, std::string(8, '\1')));
  SafetensorsFile f = SafetensorsFile::open(path);
  CHECK(f.names() == std::vector<std::string>{"a", "b", "c"});
  CHECK(f.info("a").dtype_name == "U16");
  CHECK(!f.info("a").supported);
  CHECK(!f.is_zero_copy("a"));
  check_throws_with([&] { f.get("a"); }, {path, "'a'", "dtype U16", "cannot load"});
  check_throws_with([&] { f.get("b"); }, {path, "'b'", "dtype BOOL", "cannot load"});
  check_throws_with([&] { f.get("c"); }, {path, "'c'", "dtype F8_E4M3", "cannot load"});
}

TEST_CASE("safetensors: every malformed-file rule gives a clear error") {
  TempDir dir;
  const std::string one = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  // Sanity: the base case is valid.
  write_bytes(dir.file("ok.safetensors"), make_file(one, f32_ramp(2)));
  CHECK(SafetensorsFile::open(dir.file("ok.safetensors")).names().size() == 1);

  SUBCASE("file shorter than the length field") {
    check_open_fails(dir, std::string("\x08\0\0", 3),
                     {"truncated", "3 bytes", "8-byte header length"});
    check_open_fails(dir, "", {"truncated", "0 bytes"});
  }
  SUBCASE("data cut short") {
    check_open_fails(dir, make_file(one, f32_ramp(1)),
                     {"tensor 'a' ends at data byte 8", "only 4 bytes", "truncated"});
  }
  SUBCASE("oversized header length") {
    check_open_fails(dir, make_file(one, f32_ramp(2), 100'000'001),
                     {"header length 100000001", "exceeds the limit of 100000000"});
  }
  SUBCASE("header length past the end of the file") {
    check_open_fails(dir, make_file(one, f32_ramp(2), 1000),
                     {"header length 1000", "runs past the end of the file"});
  }
  SUBCASE("bad JSON") {
    check_open_fails(dir, make_file(R"({"a":{"dtype":)", ""), {"header is not valid JSON"});
    check_open_fails(dir, make_file(one + "x", f32_ramp(2)), {"header is not valid JSON"});
  }
  SUBCASE("not an object") {
    check_open_fails(dir, make_file("[1, 2]", ""), {"header must be a JSON object", "array"});
  }
  SUBCASE("invalid UTF-8") {
    check_open_fails(dir, make_file("{\"\xc3\x28\":{}}", ""), {"not valid UTF-8"});
    check_open_fails(dir, make_file("{\"\xed\xa0\x80\":{}}", ""),
                     {"not valid UTF-8"});  // surrogate
  }
  SUBCASE("duplicate name") {
    const std::string j = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
    check_open_fails(dir, make_file(j, f32_ramp(2)), {"duplicate key 'a'", "tensor named twice"});
  }
  SUBCASE("duplicate key inside an entry") {
    const std::string j = R"({"a":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}})";
    check_open_fails(dir, make_file(j, f32_ramp(1)), {"duplicate key 'dtype'"});
  }
  SUBCASE("gap between tensors") {
    const std::string j = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
    check_open_fails(dir, make_file(j, f32_ramp(3)), {"gap in the data", "[4, 8)", "'b'"});
  }
  SUBCASE("first tensor does not begin at 0") {
    const std::string j = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
    check_open_fails(dir, make_file(j, f32_ramp(2)), {"gap in the data", "[0, 4)"});
  }
  SUBCASE("bytes after the last tensor") {
    check_open_fails(dir, make_file(one, f32_ramp(3)),
                     {"the data has 12 bytes but the tensors cover 8", "belong to no tensor"});
  }
  SUBCASE("overlap") {
    const std::string j = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
    check_open_fails(dir, make_file(j, f32_ramp(3)),
                     {"tensors 'a' and 'b' overlap", "[0, 8)", "[4, 12)"});
  }
  SUBCASE("wrong byte count") {
    const std::string j = R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
    check_open_fails(dir, make_file(j, f32_ramp(2)),
                     {"tensor 'a'", "wrong byte count", "F32 [3] needs 12 bytes", "span 8"});
  }
  SUBCASE("unknown dtype") {
    const std::string j = R"({"a":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}})";
    check_open_fails(dir, make_file(j, f32_ramp(2)), {"tensor 'a'", "unknown dtype 'F12'"});
  }
  SUBCASE("missing and mistyped fields") {
    check_open_fails(dir, make_file(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", f32_ramp(1)),
                     {"tensor 'a'", "no \"dtype\""});
    check_open_fails(dir, make_file(R"({"a":[1]})", ""), {"tensor 'a'", "must be an object"});
    check_open_fails(
        dir, make_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", f32_ramp(1)),
        {"tensor 'a'", "non-negative integers", "-1"});
    check_open_fails(
        dir, make_file(R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", f32_ramp(1)),
        {"non-negative integers"});
    check_open_fails(
        dir, make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", f32_ramp(1)),
        {"data_offsets must be two non-negative integers"});
    check_open_fails(
        dir, make_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", f32_ramp(1)),
        {"end before they begin"});
  }
  SUBCASE("element count overflow") {
    const std::string j =
        R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})";
    check_open_fails(dir, make_file(j, ""), {"tensor 'a'", "overflows"});
    // No elements, but the strides of [0, 2^40, 2^40] would not fit int64.
    const std::string z =
        R"({"a":{"dtype":"F32","shape":[0,1099511627776,1099511627776],"data_offsets":[0,0]}})";
    check_open_fails(dir, make_file(z, ""), {"tensor 'a'", "overflows"});
    const std::string k =
        R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})";
    check_open_fails(dir, make_file(k, ""), {"tensor 'a'", "byte size", "overflows"});
  }
  SUBCASE("bad metadata") {
    check_open_fails(dir, make_file(R"({"__metadata__":{"k":1}})", ""),
                     {"__metadata__ must map strings to strings", "'k'"});
    check_open_fails(dir, make_file(R"({"__metadata__":[]})", ""),
                     {"__metadata__ must be an object"});
  }
  SUBCASE("hostile nesting") {
    check_open_fails(
        dir, make_file("{\"a\":" + std::string(1000, '[') + std::string(1000, ']') + "}", ""),
        {"nests deeper than"});
  }
  SUBCASE("not a file") {
    check_throws_with([&] { SafetensorsFile::open(dir.file("missing.safetensors")); },
                      {"safetensors", "missing.safetensors", "cannot open"});
    check_throws_with([&] { SafetensorsFile::open(dir.path.string()); }, {"not a regular file"});
  }
}

TEST_CASE("safetensors: the parser works on memory and never reads past the end") {
  const std::string one = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string bytes = make_file(one, f32_ramp(2));
  SafetensorsHeader h = parse_safetensors_header(bytes.data(), bytes.size());
  CHECK(h.header_len == one.size());
  CHECK(h.data_start == 8 + one.size());
  CHECK(h.data_size == 8);
  // Every proper prefix of a valid file is invalid; each fails cleanly (ASan watches the reads:
  // the prefix is copied into an exactly sized buffer).
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<char> prefix(bytes.begin(), bytes.begin() + long(n));
    CHECK_THROWS_AS(parse_safetensors_header(prefix.data(), n, "prefix"), Error);
  }
}

TEST_CASE("safetensors: writer misuse") {
  TempDir dir;
  const std::string p = dir.file("w.safetensors");
  check_throws_with(
      [&] {
        write_safetensors(p, {{"a", Tensor::zeros({1})}, {"a", Tensor::zeros({2})}});
      },
      {"write_safetensors", "duplicate tensor name 'a'"});
  check_throws_with(
      [&] {
        write_safetensors(p, {{"__metadata__", Tensor::zeros({1})}});
      },
      {"write_safetensors", "'__metadata__' is reserved"});
  check_throws_with(
      [&] {
        write_safetensors(p, {{"u", Tensor()}});
      },
      {"write_safetensors", "'u' is undefined"});
  check_throws_with(
      [&] {
        write_safetensors(p, {{"bad\xff", Tensor::zeros({1})}});
      },
      {"write_safetensors", "not valid UTF-8"});
  CHECK(!std::filesystem::exists(p));
}

TEST_CASE("safetensors: UTF-8 validation") {
  auto ok = [](const std::string& s) { return is_valid_utf8(s.data(), s.size()); };
  CHECK(ok("plain ascii"));
  CHECK(ok("h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80"));  // é ☃ 😀
  CHECK(!ok("\xc0\xaf"));                                   // overlong '/'
  CHECK(!ok("\xe0\x80\xaf"));                               // overlong
  CHECK(!ok("\xf4\x90\x80\x80"));                           // > U+10FFFF
  CHECK(!ok("\xe2\x98"));                                   // cut short
  CHECK(!ok("\x80"));                                       // stray continuation byte
}
}
