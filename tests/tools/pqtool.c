/* pqtool: a small command-line driver of the Parquet room for integration tests and the
 * benchmark (not installed, not part of fhirlake).
 *   pqtool write SPEC.json OUT.parquet      rows layer; prints the file stats as JSON
 *   pqtool read IN.parquet [COL...]         rows layer; prints {"columns":[..],"rows":[..]}
 *   pqtool write-json SCHEMA.txt RECORDS.ndjson OUT.parquet [codec]   generic layer
 *   pqtool read-json IN.parquet             generic layer; prints NDJSON records
 *   pqtool schema IN.parquet                prints the message schema
 *   pqtool bench-rows ROWS.ndjson OUT.parquet [codec] [repeat] [nosync]
 *   pqtool count IN.parquet                 reads all rows (rows layer); prints count, CPU s
 *   pqtool stream N OUT.parquet [ROW_GROUP_MIB]   N synthetic rows streamed; prints peak RSS
 *                                           times writing patient_flat rows; prints JSON
 * SPEC.json: {"codec":"snappy","row_group_bytes":N,"page_bytes":N,"dictionary":true,"page_v2":false,
 *   "decimal":[p,s],"columns":[{"name":..,"type":"string|boolean|integer|long|double|
 *   decimal|date|timestamp","list":false}],"rows":[[v,...],...]} with dates as
 *   "YYYY-MM-DD", timestamps as RFC 3339 text, decimals as numbers or strings. */
#include "format/parquet.h"
#include "json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *slurp(const char *path, size_t *n)
{
    buf b = BUF_INIT;
    if (buf_read_file(&b, path)) {
        buf_free(&b);
        return NULL;
    }
    *n = b.len;
    if (!b.p) buf_puts(&b, "");
    return buf_detach(&b);
}

static int die(const fl_err *e)
{
    fprintf(stderr, "pqtool: %s [%s]\n", e->msg, e->where);
    return 1;
}

static int parse_type(const char *s, rows_type *t)
{
    for (int i = 0; i <= ROWS_TIMESTAMP; i++)
        if (!strcmp(rows_type_name((rows_type)i), s)) {
            *t = (rows_type)i;
            return 0;
        }
    return -1;
}

static int set_value(rows_batch *b, size_t col, rows_type t, const json_val *v, fl_err *e)
{
    int64_t x;
    double d;
    switch (t) {
    case ROWS_STRING:
    case ROWS_DECIMAL:
        if (v->type != JSON_STRING && v->type != JSON_NUMBER) break;
        rows_set_str(b, col, v->u.s, v->len);
        return 0;
    case ROWS_BOOL:
        if (v->type != JSON_TRUE && v->type != JSON_FALSE) break;
        rows_set_int(b, col, v->type == JSON_TRUE);
        return 0;
    case ROWS_DOUBLE:
        if (json_num_double(v, &d)) break;
        rows_set_double(b, col, d);
        return 0;
    case ROWS_DATE:
    case ROWS_TIMESTAMP:
        if (v->type != JSON_STRING || fl_time_parse(v->u.s, v->len, &x)) break;
        rows_set_int(b, col, t == ROWS_DATE ? x / 86400000000LL - (x % 86400000000LL < 0) : x);
        return 0;
    default:
        if (json_num_int64(v, &x)) break;
        rows_set_int(b, col, x);
        return 0;
    }
    fl_err_set(e, 400, b->schema->f[col].name, "bad value for %s", rows_type_name(t));
    return -1;
}

static int cmd_write(const char *spec_path, const char *out)
{
    size_t n;
    char *text = slurp(spec_path, &n);
    fl_err e;
    fl_err_clear(&e);
    if (!text) return fprintf(stderr, "pqtool: cannot read %s\n", spec_path), 1;
    arena *a = arena_new(0);
    json_limits lim = {256, (size_t)1 << 30};
    json_val *spec = json_parse(a, text, n, &lim, &e);
    if (!spec) return die(&e);
    pq_options o;
    pq_options_init(&o);
    const char *codec = json_get_str(spec, "codec");
    if (codec && pq_codec_parse(codec, &o.codec)) return fprintf(stderr, "pqtool: bad codec\n"), 1;
    int64_t x;
    if (!json_num_int64(json_get(spec, "row_group_bytes"), &x)) o.row_group_bytes = (size_t)x;
    if (!json_num_int64(json_get(spec, "page_bytes"), &x)) o.page_bytes = (size_t)x;
    if (!json_num_int64(json_get(spec, "dict_bytes"), &x)) o.dict_bytes = (size_t)x;
    if (json_get(spec, "dictionary")) o.dictionary = json_is(json_get(spec, "dictionary"), JSON_TRUE);
    o.page_v2 = json_is(json_get(spec, "page_v2"), JSON_TRUE);
    json_val *dec = json_get(spec, "decimal");
    if (json_is(dec, JSON_ARRAY) && dec->len == 2 && !json_num_int64(&dec->u.a[0], &x)) {
        o.decimal_precision = (int)x;
        if (!json_num_int64(&dec->u.a[1], &x)) o.decimal_scale = (int)x;
    }
    rows_schema *rs = rows_schema_new();
    json_val *cols = json_get(spec, "columns");
    for (uint32_t i = 0; cols && i < cols->len; i++) {
        rows_type t;
        const char *ty = json_get_str(&cols->u.a[i], "type");
        if (!ty || parse_type(ty, &t)) return fprintf(stderr, "pqtool: bad type\n"), 1;
        rows_schema_add(rs, json_get_str(&cols->u.a[i], "name"), t,
                        json_is(json_get(&cols->u.a[i], "list"), JSON_TRUE));
    }
    pq_writer *w = pq_writer_open(out, rs, &o, &e);
    if (!w) return die(&e);
    rows_batch *b = rows_batch_new(rs);
    json_val *rows = json_get(spec, "rows");
    for (uint32_t r = 0; rows && r < rows->len; r++) {
        json_val *row = &rows->u.a[r];
        rows_begin_row(b);
        for (size_t c = 0; c < rs->n && c < row->len; c++) {
            json_val *v = &row->u.a[c];
            if (v->type == JSON_NULL) continue;
            if (rs->f[c].list) {
                for (uint32_t k = 0; k < v->len; k++)
                    if (set_value(b, c, rs->f[c].type, &v->u.a[k], &e)) return die(&e);
            } else if (set_value(b, c, rs->f[c].type, v, &e)) {
                return die(&e);
            }
        }
        rows_end_row(b);
        if (b->n_rows == 1000) {
            if (pq_write_batch(w, b, &e)) return die(&e);
            rows_batch_clear(b);
        }
    }
    if (pq_write_batch(w, b, &e)) return die(&e);
    pq_file_stats st;
    if (pq_writer_close(w, &st, &e)) return die(&e);
    buf ob = BUF_INIT;
    jw j;
    jw_init(&j, &ob);
    jw_obj_begin(&j);
    jw_key(&j, "num_rows");
    jw_int(&j, st.num_rows);
    jw_key(&j, "file_size");
    jw_int(&j, st.file_size);
    jw_key(&j, "row_groups");
    jw_int(&j, (int64_t)st.num_row_groups);
    jw_key(&j, "columns");
    jw_obj_begin(&j);
    for (size_t i = 0; i < st.n_cols; i++) {
        pq_col_stats *cs = &st.cols[i];
        jw_key(&j, cs->name);
        jw_obj_begin(&j);
        jw_key(&j, "null_count");
        jw_int(&j, cs->null_count);
        if (cs->has_minmax) {
            for (int k = 0; k < 2; k++) {
                rows_value *v = k ? &cs->max : &cs->min;
                jw_key(&j, k ? "max" : "min");
                char t[40];
                switch (cs->type) {
                case ROWS_STRING: jw_strn(&j, v->s.p, v->s.len); break;
                case ROWS_DECIMAL: jw_raw(&j, v->s.p, v->s.len); break;
                case ROWS_DOUBLE: jw_double(&j, v->d); break;
                case ROWS_BOOL: jw_bool(&j, v->i != 0); break;
                case ROWS_TIMESTAMP: fl_time_format(v->i, t); jw_str(&j, t); break;
                case ROWS_DATE: fl_time_format(v->i * 86400000000LL, t); t[10] = 0; jw_str(&j, t); break;
                default: jw_int(&j, v->i); break;
                }
            }
        }
        jw_obj_end(&j);
    }
    jw_obj_end(&j);
    jw_obj_end(&j);
    puts(ob.p);
    buf_free(&ob);
    pq_file_stats_free(&st);
    rows_batch_free(b);
    rows_schema_free(rs);
    arena_free(a);
    free(text);
    return 0;
}

static void put_value(jw *j, rows_type t, const rows_value *v)
{
    char tmp[40];
    switch (t) {
    case ROWS_STRING: jw_strn(j, v->s.p, v->s.len); break;
    case ROWS_DECIMAL: jw_raw(j, v->s.p, v->s.len); break;
    case ROWS_BOOL: jw_bool(j, v->i != 0); break;
    case ROWS_DOUBLE: jw_double(j, v->d); break;
    case ROWS_TIMESTAMP: fl_time_format(v->i, tmp); jw_str(j, tmp); break;
    case ROWS_DATE: {
        int64_t y;
        unsigned m, d;
        fl_civil_from_days(v->i, &y, &m, &d);
        snprintf(tmp, sizeof tmp, "%04lld-%02u-%02u", (long long)y, m, d);
        jw_str(j, tmp);
        break;
    }
    default: jw_int(j, v->i); break;
    }
}

static int cmd_read(const char *path, int ncol, char **cols)
{
    fl_err e;
    fl_err_clear(&e);
    pq_reader *r = pq_reader_open(path, &e);
    if (!r) return die(&e);
    rows_schema *file = pq_reader_rows_schema(r), *want = file;
    if (ncol > 0) {
        want = rows_schema_new();
        for (int i = 0; i < ncol; i++) {
            char *spec = cols[i], *colon = strchr(spec, ':');
            rows_type t = ROWS_STRING;
            bool list = false;
            if (colon) { /* NAME:TYPE[:list] for a column the file may lack */
                *colon = 0;
                char *l = strchr(colon + 1, ':');
                if (l) *l = 0, list = true;
                if (parse_type(colon + 1, &t)) return fprintf(stderr, "pqtool: bad type\n"), 1;
            } else {
                int k = rows_schema_find(file, spec);
                if (k < 0) return fprintf(stderr, "pqtool: no column %s\n", spec), 1;
                t = file->f[k].type;
                list = file->f[k].list;
            }
            rows_schema_add(want, spec, t, list);
        }
    }
    rows_batch *b = rows_batch_new(want);
    buf ob = BUF_INIT;
    jw j;
    jw_init(&j, &ob);
    jw_obj_begin(&j);
    jw_key(&j, "columns");
    jw_arr_begin(&j);
    for (size_t i = 0; i < want->n; i++) {
        jw_obj_begin(&j);
        jw_key(&j, "name");
        jw_str(&j, want->f[i].name);
        jw_key(&j, "type");
        jw_str(&j, rows_type_name(want->f[i].type));
        jw_key(&j, "list");
        jw_bool(&j, want->f[i].list);
        jw_obj_end(&j);
    }
    jw_arr_end(&j);
    jw_key(&j, "rows");
    jw_arr_begin(&j);
    int rc;
    while ((rc = pq_read_batch(r, b, &e)) == 1) {
        for (size_t row = 0; row < b->n_rows; row++) {
            jw_arr_begin(&j);
            for (size_t c = 0; c < want->n; c++) {
                if (rows_is_null(b, c, row)) {
                    jw_null(&j);
                } else if (want->f[c].list) {
                    jw_arr_begin(&j);
                    for (uint32_t k = b->cols[c].offs[row]; k < b->cols[c].offs[row + 1]; k++)
                        put_value(&j, want->f[c].type, &b->cols[c].vals[k]);
                    jw_arr_end(&j);
                } else {
                    put_value(&j, want->f[c].type, rows_get(b, c, row));
                }
            }
            jw_arr_end(&j);
        }
    }
    if (rc < 0) return die(&e);
    jw_arr_end(&j);
    jw_obj_end(&j);
    fwrite(ob.p, 1, ob.len, stdout);
    putchar('\n');
    buf_free(&ob);
    rows_batch_free(b);
    if (want != file) rows_schema_free(want);
    rows_schema_free(file);
    pq_reader_close(r);
    return 0;
}

static int cmd_write_json(const char *schema_path, const char *nd_path, const char *out,
                          const char *codec)
{
    size_t n, m;
    char *st = slurp(schema_path, &n), *nd = slurp(nd_path, &m);
    if (!st || !nd) return fprintf(stderr, "pqtool: cannot read input\n"), 1;
    fl_err e;
    fl_err_clear(&e);
    pq_schema *s = pq_schema_parse(st, &e);
    if (!s) return die(&e);
    pq_options o;
    pq_options_init(&o);
    if (codec && pq_codec_parse(codec, &o.codec)) return fprintf(stderr, "pqtool: bad codec\n"), 1;
    pq_writer *w = pq_writer_open_schema(out, s, &o, &e);
    if (!w) return die(&e);
    arena *a = arena_new(0);
    for (char *line = nd; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len) {
            json_val *rec = json_parse(a, line, len, NULL, &e);
            if (!rec || pq_write_json(w, rec, &e)) {
                pq_writer_abort(w);
                return die(&e);
            }
        }
        arena_reset(a);
        line = nl ? nl + 1 : NULL;
    }
    if (pq_writer_close(w, NULL, &e)) return die(&e);
    arena_free(a);
    pq_schema_free(s);
    free(st);
    free(nd);
    return 0;
}

static int cmd_read_json(const char *path)
{
    fl_err e;
    fl_err_clear(&e);
    pq_reader *r = pq_reader_open(path, &e);
    if (!r) return die(&e);
    arena *a = arena_new(0);
    json_val *arr;
    buf ob = BUF_INIT;
    while ((arr = pq_read_json(r, a, &e))) {
        for (uint32_t i = 0; i < arr->len; i++) {
            buf_reset(&ob);
            json_write(&ob, &arr->u.a[i], false);
            puts(ob.p);
        }
        arena_reset(a);
    }
    if (!FL_OK(&e)) return die(&e);
    buf_free(&ob);
    arena_free(a);
    pq_reader_close(r);
    return 0;
}

static int cmd_schema(const char *path)
{
    fl_err e;
    fl_err_clear(&e);
    pq_reader *r = pq_reader_open(path, &e);
    if (!r) return die(&e);
    buf b = BUF_INIT;
    pq_schema_print(pq_reader_schema(r), &b);
    fputs(b.p, stdout);
    buf_free(&b);
    pq_reader_close(r);
    return 0;
}

static rows_schema *patient_flat_schema(void)
{
    rows_schema *rs = rows_schema_new();
    rows_schema_add(rs, "id", ROWS_STRING, false);
    rows_schema_add(rs, "ts", ROWS_TIMESTAMP, false);
    rows_schema_add(rs, "gender", ROWS_STRING, false);
    rows_schema_add(rs, "birth_date", ROWS_DATE, false);
    rows_schema_add(rs, "family_name", ROWS_STRING, false);
    rows_schema_add(rs, "given_name", ROWS_STRING, false);
    rows_schema_add(rs, "is_deleted", ROWS_INT32, false);
    return rs;
}

/* CPU time of the process (all threads): robust against other load on a shared machine. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes the prepared batches `repeat` times; prints the best time as JSON. */
static int timed_writes(rows_schema *rs, rows_batch **bs, size_t nb, long nrows, const char *out,
                        const char *codec, int repeat, bool durable)
{
    pq_options o;
    pq_options_init(&o);
    o.durable = durable;
    if (codec && pq_codec_parse(codec, &o.codec)) return 2;
    fl_err e;
    fl_err_clear(&e);
    double best = 1e30, best_cpu = 1e30;
    int64_t size = 0;
    for (int k = 0; k < repeat; k++) {
        int64_t t0 = fl_mono_micros();
        double c0 = cpu_seconds();
        pq_writer *w = pq_writer_open(out, rs, &o, &e);
        if (!w) return die(&e);
        for (size_t i = 0; i < nb; i++)
            if (pq_write_batch(w, bs[i], &e)) return die(&e);
        pq_file_stats st;
        if (pq_writer_close(w, &st, &e)) return die(&e);
        double secs = (double)(fl_mono_micros() - t0) / 1e6, cpu = cpu_seconds() - c0;
        if (secs < best) best = secs;
        if (cpu < best_cpu) best_cpu = cpu;
        size = st.file_size;
        pq_file_stats_free(&st);
    }
    printf("{\"rows\": %ld, \"seconds\": %.6f, \"cpu_seconds\": %.6f, \"file_size\": %lld}\n", nrows,
           best, best_cpu, (long long)size);
    return 0;
}

/* Rows from an NDJSON file of arrays [id, ts, gender, birth_date, family, given, is_deleted]
 * (bench/parquet/make_rows.py), parsed before timing so only the Parquet write is timed,
 * like pyarrow.parquet.write_table from Arrow memory. */
static int cmd_bench_rows(const char *rows_path, const char *out, const char *codec, int repeat,
                          bool durable)
{
    size_t n;
    char *text = slurp(rows_path, &n);
    if (!text) return fprintf(stderr, "pqtool: cannot read %s\n", rows_path), 1;
    rows_schema *rs = patient_flat_schema();
    fl_err e;
    fl_err_clear(&e);
    size_t per = 65536, nb = 0, cap = 16;
    rows_batch **bs = calloc(cap, sizeof *bs);
    arena *a = arena_new(0);
    long nrows = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len) {
            json_val *row = json_parse(a, line, len, NULL, &e);
            if (!row || row->type != JSON_ARRAY || row->len != rs->n) return die(&e);
            if (nb == 0 || bs[nb - 1]->n_rows == per) {
                if (nb == cap) bs = realloc(bs, (cap *= 2) * sizeof *bs);
                bs[nb++] = rows_batch_new(rs);
            }
            rows_batch *b = bs[nb - 1];
            rows_begin_row(b);
            for (size_t c = 0; c < rs->n; c++)
                if (row->u.a[c].type != JSON_NULL && set_value(b, c, rs->f[c].type, &row->u.a[c], &e))
                    return die(&e);
            rows_end_row(b);
            nrows++;
        }
        arena_reset(a);
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    arena_free(a);
    int rc = timed_writes(rs, bs, nb, nrows, out, codec, repeat, durable);
    for (size_t k = 0; k < nb; k++) rows_batch_free(bs[k]);
    free(bs);
    rows_schema_free(rs);
    return rc;
}

/* Streams N synthetic patient_flat rows through one reused 10k-row batch with the default
 * options, then prints the rows, time and peak RSS: memory must stay bounded by one row
 * group whatever N is. */
static int cmd_stream(long nrows, const char *out, long rg_mib)
{
    static const char *genders[] = {"male", "female", "other", "unknown"};
    rows_schema *rs = patient_flat_schema();
    rows_batch *b = rows_batch_new(rs);
    pq_options o;
    pq_options_init(&o);
    if (rg_mib > 0) o.row_group_bytes = (size_t)rg_mib << 20;
    fl_err e;
    fl_err_clear(&e);
    int64_t t0 = fl_mono_micros();
    pq_writer *w = pq_writer_open(out, rs, &o, &e);
    if (!w) return die(&e);
    for (long i = 0; i < nrows; i++) {
        char id[48], fam[32], giv[32];
        int idl = snprintf(id, sizeof id, "%08lx-%04lx-4%03lx-a%03lx-%012lx", i * 2654435761L % 4294967291L,
                           i % 65521, i % 4093, (i / 7) % 4093, (long)((unsigned long)i * 11400714819323198485ul % 281474976710655ul));
        int fl = snprintf(fam, sizeof fam, "Family%ld", (i * 31) % 5000);
        int gl = snprintf(giv, sizeof giv, "Given%ld", (i * 17) % 3000);
        rows_begin_row(b);
        rows_set_str(b, 0, id, (size_t)idl);
        rows_set_int(b, 1, 1700000000000000LL + i * 1000);
        rows_set_str(b, 2, genders[i % 4], strlen(genders[i % 4]));
        rows_set_int(b, 3, -20000 + (i * 37) % 36500);
        rows_set_str(b, 4, fam, (size_t)fl);
        rows_set_str(b, 5, giv, (size_t)gl);
        rows_set_int(b, 6, i % 50 == 0);
        rows_end_row(b);
        if (b->n_rows == 10000) {
            if (pq_write_batch(w, b, &e)) return die(&e);
            rows_batch_clear(b);
        }
    }
    if (pq_write_batch(w, b, &e)) return die(&e);
    pq_file_stats st;
    if (pq_writer_close(w, &st, &e)) return die(&e);
    /* VmHWM of this image: getrusage's maxrss can carry the parent's peak across exec */
    double hwm_kib = 0;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) hwm_kib = strtod(line + 6, NULL);
    if (f) fclose(f);
    printf("{\"rows\": %ld, \"seconds\": %.3f, \"row_groups\": %zu, \"file_size\": %lld, \"max_rss_mib\": %.1f}\n",
           nrows, (double)(fl_mono_micros() - t0) / 1e6, st.num_row_groups, (long long)st.file_size,
           hwm_kib / 1024.0);
    pq_file_stats_free(&st);
    rows_batch_free(b);
    rows_schema_free(rs);
    return 0;
}

/* Reads every row group through the rows layer and prints rows and CPU seconds (read
 * throughput without the cost of printing values). */
static int cmd_count(const char *path)
{
    fl_err e;
    fl_err_clear(&e);
    double c0 = cpu_seconds();
    pq_reader *r = pq_reader_open(path, &e);
    if (!r) return die(&e);
    rows_schema *rs = pq_reader_rows_schema(r);
    rows_batch *b = rows_batch_new(rs);
    long n = 0;
    int rc;
    while ((rc = pq_read_batch(r, b, &e)) == 1) n += (long)b->n_rows;
    if (rc < 0) return die(&e);
    printf("{\"rows\": %ld, \"cpu_seconds\": %.3f}\n", n, cpu_seconds() - c0);
    rows_batch_free(b);
    rows_schema_free(rs);
    pq_reader_close(r);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "write")) return cmd_write(argv[2], argv[3]);
    if (argc >= 3 && !strcmp(argv[1], "read")) return cmd_read(argv[2], argc - 3, argv + 3);
    if (argc >= 5 && !strcmp(argv[1], "write-json"))
        return cmd_write_json(argv[2], argv[3], argv[4], argc > 5 ? argv[5] : NULL);
    if (argc >= 3 && !strcmp(argv[1], "read-json")) return cmd_read_json(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "schema")) return cmd_schema(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "count")) return cmd_count(argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "stream"))
        return cmd_stream(strtol(argv[2], NULL, 10), argv[3], argc > 4 ? strtol(argv[4], NULL, 10) : 0);
    if (argc >= 4 && !strcmp(argv[1], "bench-rows"))
        return cmd_bench_rows(argv[2], argv[3], argc > 4 ? argv[4] : NULL,
                              argc > 5 ? (int)strtol(argv[5], NULL, 10) : 1,
                              !(argc > 6 && !strcmp(argv[6], "nosync")));
    fprintf(stderr, "usage: pqtool write|read|write-json|read-json|schema|bench-rows|stream|count ...\n");
    return 2;
}
