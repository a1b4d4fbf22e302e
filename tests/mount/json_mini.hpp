// A tiny JSON reader for the mount tests: enough to check the documents
// aufsctl prints (objects, arrays, strings, integers, booleans, null).
// Parsing is strict: trailing garbage or a syntax error gives nullopt.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace aufs::mt::json {

struct Value {
  enum class Type { Null, Bool, Number, String, Array, Object } type = Type::Null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Value> arr;
  std::map<std::string, Value> obj;

  bool is_null() const { return type == Type::Null; }
  bool is_bool() const { return type == Type::Bool; }
  bool is_num() const { return type == Type::Number; }
  bool is_str() const { return type == Type::String; }
  bool is_arr() const { return type == Type::Array; }
  bool is_obj() const { return type == Type::Object; }
  bool has(const std::string& k) const { return is_obj() && obj.count(k) != 0; }
  // Missing keys / indices give a null value.
  const Value& operator[](const std::string& k) const {
    static const Value none;
    if (!is_obj()) return none;
    auto it = obj.find(k);
    return it == obj.end() ? none : it->second;
  }
  const Value& operator[](size_t i) const {
    static const Value none;
    return is_arr() && i < arr.size() ? arr[i] : none;
  }
  size_t size() const { return is_arr() ? arr.size() : is_obj() ? obj.size() : 0; }
  long long i() const { return static_cast<long long>(num); }
};

namespace detail {

struct Parser {
  const std::string& s;
  size_t p = 0;
  void ws() {
    while (p < s.size() && (s[p] == ' ' || s[p] == '\t' || s[p] == '\n' || s[p] == '\r')) ++p;
  }
  bool lit(const char* w) {
    size_t n = std::char_traits<char>::length(w);
    if (s.compare(p, n, w) != 0) return false;
    p += n;
    return true;
  }
  bool string(std::string& out) {
    if (p >= s.size() || s[p] != '"') return false;
    ++p;
    while (p < s.size() && s[p] != '"') {
      char c = s[p++];
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p >= s.size()) return false;
      char e = s[p++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (p + 4 > s.size()) return false;
          unsigned v = 0;
          for (int k = 0; k < 4; ++k) {
            char h = s[p++];
            v <<= 4;
            if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
            else return false;
          }
          if (v < 0x80) out += static_cast<char>(v);
          else if (v < 0x800) {
            out += static_cast<char>(0xc0 | (v >> 6));
            out += static_cast<char>(0x80 | (v & 0x3f));
          } else {
            out += static_cast<char>(0xe0 | (v >> 12));
            out += static_cast<char>(0x80 | ((v >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (v & 0x3f));
          }
          break;
        }
        default: return false;
      }
    }
    if (p >= s.size()) return false;
    ++p;
    return true;
  }
  bool value(Value& v, int depth = 0) {
    if (depth > 64) return false;
    ws();
    if (p >= s.size()) return false;
    char c = s[p];
    if (c == '{') {
      v.type = Value::Type::Object;
      ++p;
      ws();
      if (p < s.size() && s[p] == '}') { ++p; return true; }
      for (;;) {
        ws();
        std::string k;
        if (!string(k)) return false;
        ws();
        if (p >= s.size() || s[p++] != ':') return false;
        if (v.obj.count(k)) return false;  // duplicate key
        if (!value(v.obj[k], depth + 1)) return false;
        ws();
        if (p < s.size() && s[p] == ',') { ++p; continue; }
        if (p < s.size() && s[p] == '}') { ++p; return true; }
        return false;
      }
    }
    if (c == '[') {
      v.type = Value::Type::Array;
      ++p;
      ws();
      if (p < s.size() && s[p] == ']') { ++p; return true; }
      for (;;) {
        v.arr.emplace_back();
        if (!value(v.arr.back(), depth + 1)) return false;
        ws();
        if (p < s.size() && s[p] == ',') { ++p; continue; }
        if (p < s.size() && s[p] == ']') { ++p; return true; }
        return false;
      }
    }
    if (c == '"') {
      v.type = Value::Type::String;
      return string(v.str);
    }
    if (lit("true")) { v.type = Value::Type::Bool; v.b = true; return true; }
    if (lit("false")) { v.type = Value::Type::Bool; v.b = false; return true; }
    if (lit("null")) { v.type = Value::Type::Null; return true; }
    size_t start = p;
    if (p < s.size() && s[p] == '-') ++p;
    while (p < s.size() && ((s[p] >= '0' && s[p] <= '9') || s[p] == '.' || s[p] == 'e' ||
                            s[p] == 'E' || s[p] == '+' || s[p] == '-'))
      ++p;
    if (p == start) return false;
    try {
      size_t used = 0;
      v.num = std::stod(s.substr(start, p - start), &used);
      if (used != p - start) return false;
    } catch (...) {
      return false;
    }
    v.type = Value::Type::Number;
    return true;
  }
};

}  // namespace detail

inline std::optional<Value> parse(const std::string& text) {
  detail::Parser ps{text};
  Value v;
  if (!ps.value(v)) return std::nullopt;
  ps.ws();
  if (ps.p != text.size()) return std::nullopt;
  return v;
}

}  // namespace aufs::mt::json
