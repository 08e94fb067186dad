// bench_simdjson.cpp: the same parse+walk benchmark as bench_json.c, with simdjson's
// DOM parser (the benchmark's only C++; fhirlake itself is C).
//
//   bench_simdjson FILE [SECONDS]
//
// Each NDJSON line is parsed with dom::parser::parse() in place (the lines sit in one
// padded buffer, so no copy is needed), then every value is visited and counted exactly
// like bench_json.c does.
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

using namespace simdjson;

struct totals {
    uint64_t values = 0, strings = 0, numbers = 0, keys = 0, str_bytes = 0, key_bytes = 0;
};

static void walk(dom::element v, totals &t)
{
    t.values++;
    switch (v.type()) {
    case dom::element_type::STRING:
        t.strings++;
        t.str_bytes += v.get_string_length().value_unsafe();
        break;
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE:
        t.numbers++;
        break;
    case dom::element_type::ARRAY:
        for (dom::element c : dom::array(v)) walk(c, t);
        break;
    case dom::element_type::OBJECT:
        for (dom::key_value_pair kv : dom::object(v)) {
            t.keys++;
            t.key_bytes += kv.key.size();
            walk(kv.value, t);
        }
        break;
    default:
        break;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: bench_simdjson FILE [SECONDS]\n");
        return 2;
    }
    double min_secs = argc > 2 ? std::atof(argv[2]) : 3.0;
    padded_string data;
    auto err = padded_string::load(argv[1]).get(data);
    if (err) {
        std::fprintf(stderr, "%s: %s\n", argv[1], error_message(err));
        return 1;
    }
    struct line {
        const char *p;
        size_t n;
    };
    std::vector<line> lines;
    const char *base = data.data();
    size_t size = data.size();
    for (size_t i = 0; i < size;) {
        const char *nl = static_cast<const char *>(std::memchr(base + i, '\n', size - i));
        size_t e = nl ? size_t(nl - base) : size;
        if (e > i) lines.push_back({base + i, e - i});
        i = e + 1;
    }
    dom::parser parser;
    totals t;
    double best = 1e30, total = 0;
    int passes = 0;
    while (passes < 3 || total < min_secs) {
        t = totals();
        auto t0 = std::chrono::steady_clock::now();
        for (size_t i = 0; i < lines.size(); i++) {
            dom::element doc;
            auto e = parser.parse(lines[i].p, lines[i].n, false).get(doc);
            if (e) {
                std::fprintf(stderr, "line %zu: %s\n", i + 1, error_message(e));
                return 1;
            }
            walk(doc, t);
        }
        double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (dt < best) best = dt;
        total += dt;
        passes++;
    }
    std::printf("simdjson: %.1f MB/s (best of %d passes, %.1f MB, %zu docs; values %llu strings "
                "%llu numbers %llu keys %llu str_bytes %llu key_bytes %llu) [kernel %s]\n",
                double(size) / 1e6 / best, passes, double(size) / 1e6, lines.size(),
                (unsigned long long)t.values, (unsigned long long)t.strings,
                (unsigned long long)t.numbers, (unsigned long long)t.keys,
                (unsigned long long)t.str_bytes, (unsigned long long)t.key_bytes,
                get_active_implementation()->name().c_str());
    return 0;
}
