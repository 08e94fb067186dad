/* fp_parse.c: FHIRPath lexer and precedence-climbing parser into the AST of
 * fp_internal.h. Everything (nodes, names, literal text) lives in the expression's arena;
 * names of members and functions are resolved here once so evaluation does no lookups. */
#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_types.h"
#include "fp_internal.h"

typedef enum {
    T_EOF, T_IDENT, T_STR, T_NUM, T_DATE, T_DATETIME, T_TIME, T_VAR, T_SPECIAL, /* $this.. */
    T_DOT, T_COMMA, T_LP, T_RP, T_LB, T_RB, T_LC, T_RC, T_OP
} tok_type;

typedef struct tok {
    tok_type t;
    uint32_t pos;
    const char *s;   /* text (for T_STR / quoted idents: unescaped copy in the arena) */
    size_t n;
    int op;          /* T_OP: fp_op, or -1 for unary-capable +/- handled via op */
    bool quoted;     /* identifier was `delimited` */
} tok;

typedef struct parser {
    arena *a;
    const char *src;
    size_t len, p;
    tok cur;
    const fp_env *env;
    fl_err *err;
    int depth;
    fp_expr *e;
} parser;

static bool perr(parser *ps, uint32_t pos, const char *fmt, const char *arg)
{
    if (ps->err->status) return false;
    char m[200];
    snprintf(m, sizeof m, fmt, arg ? arg : "");
    fl_err_set(ps->err, 400, "", "FHIRPath syntax error at position %u in '%s': %s", pos,
               ps->src, m);
    return false;
}

/* ---- lexer ---- */

static bool lex_string(parser *ps, char q, tok *t)
{
    buf b = BUF_INIT;
    size_t p = ps->p + 1;
    while (p < ps->len && ps->src[p] != q) {
        char c = ps->src[p++];
        if (c == '\\' && p < ps->len) {
            char e = ps->src[p++];
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                if (p + 4 > ps->len) { buf_free(&b); return perr(ps, (uint32_t)p, "bad \\u escape%s", ""); }
                char hex[5] = {0};
                memcpy(hex, ps->src + p, 4);
                unsigned cp = (unsigned)strtoul(hex, NULL, 16);
                p += 4;
                /* a surrogate pair \uD83D\uDE00 is one code point */
                if (cp >= 0xD800 && cp < 0xDC00 && p + 6 <= ps->len && ps->src[p] == '\\' &&
                    ps->src[p + 1] == 'u') {
                    char lo[5] = {0};
                    memcpy(lo, ps->src + p + 2, 4);
                    unsigned c2 = (unsigned)strtoul(lo, NULL, 16);
                    if (c2 >= 0xDC00 && c2 < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (c2 - 0xDC00);
                        p += 6;
                    }
                }
                if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;   /* lone surrogate */
                if (cp >= 0x10000) {
                    buf_putc(&b, (char)(0xF0 | (cp >> 18)));
                    buf_putc(&b, (char)(0x80 | ((cp >> 12) & 0x3F)));
                    buf_putc(&b, (char)(0x80 | ((cp >> 6) & 0x3F)));
                    buf_putc(&b, (char)(0x80 | (cp & 0x3F)));
                } else if (cp < 0x80) buf_putc(&b, (char)cp);
                else if (cp < 0x800) {
                    buf_putc(&b, (char)(0xC0 | (cp >> 6)));
                    buf_putc(&b, (char)(0x80 | (cp & 0x3F)));
                } else {
                    buf_putc(&b, (char)(0xE0 | (cp >> 12)));
                    buf_putc(&b, (char)(0x80 | ((cp >> 6) & 0x3F)));
                    buf_putc(&b, (char)(0x80 | (cp & 0x3F)));
                }
                continue;
            }
            default: c = e; break;   /* \' \" \` \\ \/ */
            }
        }
        buf_putc(&b, c);
    }
    if (p >= ps->len) {
        buf_free(&b);
        return perr(ps, t->pos, "unterminated %s", q == '`' ? "identifier" : "string");
    }
    t->s = arena_strndup(ps->a, b.p ? b.p : "", b.len);
    t->n = b.len;
    buf_free(&b);
    ps->p = p + 1;
    return true;
}

static bool lex_datetime(parser *ps, tok *t)
{
    size_t p = ps->p + 1, st = p;
    const char *s = ps->src;
    if (p < ps->len && s[p] == 'T') {           /* @T12:00 time literal */
        p++;
        st = p;
        while (p < ps->len && (isdigit((unsigned char)s[p]) || s[p] == ':' ||
                               (s[p] == '.' && p + 1 < ps->len && isdigit((unsigned char)s[p + 1]))))
            p++;
        t->t = T_TIME;
    } else {
        while (p < ps->len && (isdigit((unsigned char)s[p]) || s[p] == '-')) p++;
        t->t = T_DATE;
        if (p < ps->len && s[p] == 'T') {
            p++;
            t->t = T_DATETIME;
            while (p < ps->len && (isdigit((unsigned char)s[p]) || strchr(":+-Z", s[p]) ||
                                   (s[p] == '.' && p + 1 < ps->len && isdigit((unsigned char)s[p + 1]))))
                p++;
        }
    }
    if (p == st) return perr(ps, t->pos, "bad date/time literal%s", "");
    t->s = s + st;
    t->n = p - st;
    ps->p = p;
    return true;
}

static const struct { const char *s; int op; } ops2[] = {
    {"<=", OP_LE}, {">=", OP_GE}, {"!=", OP_NE}, {"!~", OP_NEQUIV}};

static bool lex(parser *ps)
{
    const char *s = ps->src;
    while (ps->p < ps->len) {
        char c = s[ps->p];
        if (isspace((unsigned char)c)) { ps->p++; continue; }
        if (c == '/' && ps->p + 1 < ps->len && s[ps->p + 1] == '/') {
            while (ps->p < ps->len && s[ps->p] != '\n') ps->p++;
            continue;
        }
        if (c == '/' && ps->p + 1 < ps->len && s[ps->p + 1] == '*') {
            const char *e = strstr(s + ps->p + 2, "*/");
            if (!e) return perr(ps, (uint32_t)ps->p, "unterminated comment%s", "");
            ps->p = (size_t)(e - s) + 2;
            continue;
        }
        break;
    }
    tok *t = &ps->cur;
    memset(t, 0, sizeof *t);
    t->pos = (uint32_t)ps->p;
    if (ps->p >= ps->len) { t->t = T_EOF; return true; }
    char c = s[ps->p];
    if (isalpha((unsigned char)c) || c == '_') {
        size_t st = ps->p;
        while (ps->p < ps->len && (isalnum((unsigned char)s[ps->p]) || s[ps->p] == '_')) ps->p++;
        t->t = T_IDENT;
        t->s = s + st;
        t->n = ps->p - st;
        return true;
    }
    if (c == '`') { t->t = T_IDENT; t->quoted = true; return lex_string(ps, '`', t); }
    if (c == '\'') { t->t = T_STR; return lex_string(ps, '\'', t); }
    if (isdigit((unsigned char)c)) {
        size_t st = ps->p;
        while (ps->p < ps->len && isdigit((unsigned char)s[ps->p])) ps->p++;
        if (ps->p + 1 < ps->len && s[ps->p] == '.' && isdigit((unsigned char)s[ps->p + 1])) {
            ps->p++;
            while (ps->p < ps->len && isdigit((unsigned char)s[ps->p])) ps->p++;
        }
        t->t = T_NUM;
        t->s = s + st;
        t->n = ps->p - st;
        return true;
    }
    if (c == '@') return lex_datetime(ps, t);
    if (c == '%' || c == '$') {
        ps->p++;
        t->t = c == '%' ? T_VAR : T_SPECIAL;
        if (c == '%' && ps->p < ps->len && (s[ps->p] == '`' || s[ps->p] == '\'')) {
            return lex_string(ps, s[ps->p], t);
        }
        size_t st = ps->p;
        while (ps->p < ps->len && (isalnum((unsigned char)s[ps->p]) || s[ps->p] == '_')) ps->p++;
        if (ps->p == st) return perr(ps, t->pos, "expected a name after '%s'", c == '%' ? "%" : "$");
        t->s = s + st;
        t->n = ps->p - st;
        return true;
    }
    for (size_t i = 0; i < sizeof ops2 / sizeof *ops2; i++)
        if (ps->p + 1 < ps->len && !strncmp(s + ps->p, ops2[i].s, 2)) {
            ps->p += 2;
            t->t = T_OP;
            t->op = ops2[i].op;
            return true;
        }
    ps->p++;
    switch (c) {
    case '.': t->t = T_DOT; return true;
    case ',': t->t = T_COMMA; return true;
    case '(': t->t = T_LP; return true;
    case ')': t->t = T_RP; return true;
    case '[': t->t = T_LB; return true;
    case ']': t->t = T_RB; return true;
    case '{': t->t = T_LC; return true;
    case '}': t->t = T_RC; return true;
    case '*': t->t = T_OP; t->op = OP_MUL; return true;
    case '/': t->t = T_OP; t->op = OP_DIV; return true;
    case '+': t->t = T_OP; t->op = OP_ADD; return true;
    case '-': t->t = T_OP; t->op = OP_SUB; return true;
    case '&': t->t = T_OP; t->op = OP_CONCAT; return true;
    case '|': t->t = T_OP; t->op = OP_UNION; return true;
    case '<': t->t = T_OP; t->op = OP_LT; return true;
    case '>': t->t = T_OP; t->op = OP_GT; return true;
    case '=': t->t = T_OP; t->op = OP_EQ; return true;
    case '~': t->t = T_OP; t->op = OP_EQUIV; return true;
    }
    char ch[2] = {c, 0};
    return perr(ps, t->pos, "unexpected character '%s'", ch);
}

/* ---- parser ---- */

static fp_node *mk(parser *ps, fp_ntype ty, uint32_t pos)
{
    fp_node *n = arena_calloc(ps->a, sizeof *n);
    n->type = (uint8_t)ty;
    n->pos = pos;
    return n;
}

static bool tok_is_kw(const tok *t, const char *kw)
{
    return t->t == T_IDENT && !t->quoted && strlen(kw) == t->n && !memcmp(t->s, kw, t->n);
}

/* Binary operator of the current token and its precedence (higher binds tighter). */
static int binop(const tok *t, int *op)
{
    if (t->t == T_OP) {
        *op = t->op;
        switch (t->op) {
        case OP_MUL: case OP_DIV: return 10;
        case OP_ADD: case OP_SUB: case OP_CONCAT: return 9;
        case OP_UNION: return 7;
        case OP_LT: case OP_GT: case OP_LE: case OP_GE: return 6;
        default: return 5;   /* = != ~ !~ */
        }
    }
    static const struct { const char *kw; int op, prec; } kws[] = {
        {"div", OP_IDIV, 10}, {"mod", OP_MOD, 10}, {"is", -1, 8}, {"as", -2, 8},
        {"in", OP_IN, 4}, {"contains", OP_CONTAINS, 4}, {"and", OP_AND, 3},
        {"or", OP_OR, 2}, {"xor", OP_XOR, 2}, {"implies", OP_IMPLIES, 1}};
    for (size_t i = 0; i < sizeof kws / sizeof *kws; i++)
        if (tok_is_kw(t, kws[i].kw)) { *op = kws[i].op; return kws[i].prec; }
    return 0;
}

static fp_node *parse_expr(parser *ps, int min_prec);

/* A type specifier: Name or Namespace.Name; returns the final name in the arena. */
static const char *parse_type_name(parser *ps)
{
    if (ps->cur.t != T_IDENT) { perr(ps, ps->cur.pos, "expected a type name%s", ""); return NULL; }
    tok t = ps->cur;
    if (!lex(ps)) return NULL;
    if (ps->cur.t == T_DOT) {
        if (!lex(ps)) return NULL;
        if (ps->cur.t != T_IDENT) { perr(ps, ps->cur.pos, "expected a type name%s", ""); return NULL; }
        t = ps->cur;
        if (!lex(ps)) return NULL;
    }
    return arena_strndup(ps->a, t.s, t.n);
}

/* A literal pattern is compiled once here: a bad pattern is a load-time error and
 * evaluation does no regcomp. */
static bool compile_regex(parser *ps, fp_node *fn, const fp_node *pat)
{
    regex_t *re = malloc(sizeof *re);
    if (!re) abort();
    int flags = REG_EXTENDED | (!strcmp(fn->name, "matches") ? REG_NOSUB : 0);
    if (regcomp(re, pat->lit.s, flags)) {
        free(re);
        return perr(ps, pat->pos, "invalid regular expression '%s'", pat->lit.s);
    }
    fp_expr *e = ps->e;
    void **n = realloc(e->regex, (e->nregex + 1) * sizeof *n);
    if (!n) abort();
    e->regex = n;
    e->regex[e->nregex++] = re;
    fn->re = re;
    return true;
}

static bool parse_args(parser *ps, fp_node *fn)
{
    /* cur is '(' */
    if (!lex(ps)) return false;
    fp_node *args[16];
    size_t n = 0;
    const fp_fninfo *fi = fp_fn_info(fn->fn);
    if (ps->cur.t != T_RP) {
        for (;;) {
            if (n == 16) return perr(ps, ps->cur.pos, "too many arguments%s", "");
            if (fi->type_arg && n == 0) {
                fn->tname = parse_type_name(ps);
                if (!fn->tname) return false;
                n++;
                args[0] = NULL;
            } else {
                fp_node *a = parse_expr(ps, 1);
                if (!a) return false;
                args[n++] = a;
            }
            if (ps->cur.t == T_COMMA) { if (!lex(ps)) return false; continue; }
            break;
        }
    }
    if (ps->cur.t != T_RP) return perr(ps, ps->cur.pos, "expected ')'%s", "");
    if (n < fi->min_args || n > fi->max_args)
        return perr(ps, fn->pos, "wrong number of arguments to %s()", fi->name);
    fn->nargs = (uint32_t)n;
    fn->args = arena_alloc(ps->a, (n ? n : 1) * sizeof *fn->args);
    memcpy(fn->args, args, n * sizeof *args);
    if ((!strcmp(fi->name, "matches") || !strcmp(fi->name, "replaceMatches")) &&
        args[0]->type == N_LIT && args[0]->lit.kind == FP_STR && !compile_regex(ps, fn, args[0]))
        return false;
    return lex(ps);
}

/* identifier or function call, applied to base (NULL = focus). */
static fp_node *parse_invocation(parser *ps, fp_node *base)
{
    tok t = ps->cur;
    if (t.t != T_IDENT) {
        if (t.t == T_SPECIAL) goto special;
        perr(ps, t.pos, "expected a name after '.'%s", "");
        return NULL;
    }
    if (!lex(ps)) return NULL;
    if (ps->cur.t == T_LP && !t.quoted) {
        int id = fp_fn_lookup(t.s, t.n);
        if (id < 0) {
            char nm[64];
            snprintf(nm, sizeof nm, "%.*s", (int)(t.n < 60 ? t.n : 60), t.s);
            perr(ps, t.pos, "unknown function '%s'", nm);
            return NULL;
        }
        fp_node *f = mk(ps, N_FUNC, t.pos);
        f->fn = (uint16_t)id;
        f->base = base;
        f->name = fp_fn_info(id)->name;
        return parse_args(ps, f) ? f : NULL;
    }
    fp_node *m = mk(ps, N_MEMBER, t.pos);
    m->base = base;
    m->name = arena_strndup(ps->a, t.s, t.n);
    m->name_len = (uint32_t)t.n;
    return m;
special:
    perr(ps, t.pos, "unexpected '$'%s", "");
    return NULL;
}

static bool is_calendar_unit(const tok *t)
{
    static const char *u[] = {"year", "years", "month", "months", "week", "weeks", "day",
                              "days", "hour", "hours", "minute", "minutes", "second",
                              "seconds", "millisecond", "milliseconds"};
    for (size_t i = 0; i < sizeof u / sizeof *u; i++)
        if (tok_is_kw(t, u[i])) return true;
    return false;
}

static fp_node *parse_var(parser *ps, tok t)
{
    static const struct { const char *n; fp_ntype ty; } builtin[] = {
        {"resource", N_RESOURCE}, {"rootResource", N_RESOURCE}, {"context", N_CONTEXT},
        {"rowIndex", N_ROWINDEX}, {"ucum", N_UCUM}};
    for (size_t i = 0; i < sizeof builtin / sizeof *builtin; i++)
        if (strlen(builtin[i].n) == t.n && !memcmp(builtin[i].n, t.s, t.n))
            return mk(ps, builtin[i].ty, t.pos);
    if (ps->env)
        for (size_t i = 0; i < ps->env->n; i++)
            if (strlen(ps->env->names[i]) == t.n && !memcmp(ps->env->names[i], t.s, t.n)) {
                fp_node *n = mk(ps, N_VAR, t.pos);
                n->slot = (uint32_t)i;
                return n;
            }
    char nm[80];
    snprintf(nm, sizeof nm, "%.*s", (int)(t.n < 70 ? t.n : 70), t.s);
    if (!ps->err->status)
        fl_err_set(ps->err, 400, "", "undefined constant %%%s at position %u in '%s'", nm,
                   t.pos, ps->src);
    return NULL;
}

static fp_node *parse_term(parser *ps)
{
    tok t = ps->cur;
    fp_node *n;
    switch (t.t) {
    case T_LP:
        if (!lex(ps)) return NULL;
        n = parse_expr(ps, 1);
        if (!n) return NULL;
        if (ps->cur.t != T_RP) { perr(ps, ps->cur.pos, "expected ')'%s", ""); return NULL; }
        return lex(ps) ? n : NULL;
    case T_LC:
        if (!lex(ps)) return NULL;
        if (ps->cur.t != T_RC) { perr(ps, ps->cur.pos, "expected '}'%s", ""); return NULL; }
        return lex(ps) ? mk(ps, N_EMPTY, t.pos) : NULL;
    case T_STR:
        n = mk(ps, N_LIT, t.pos);
        n->lit = fp_mk_str(t.s, t.n);
        return lex(ps) ? n : NULL;
    case T_NUM: {
        n = mk(ps, N_LIT, t.pos);
        bool dec = memchr(t.s, '.', t.n) != NULL;
        if (!lex(ps)) return NULL;
        if (ps->cur.t == T_STR || is_calendar_unit(&ps->cur)) {
            n->lit.kind = FP_QTY;
            n->lit.s = arena_strndup(ps->a, t.s, t.n);
            n->lit.len = (uint32_t)t.n;
            n->lit.unit = arena_strndup(ps->a, ps->cur.s, ps->cur.n);
            n->lit.ulen = (uint32_t)ps->cur.n;
            return lex(ps) ? n : NULL;
        }
        if (dec) {
            n->lit.kind = FP_DEC;
            n->lit.s = arena_strndup(ps->a, t.s, t.n);
            n->lit.len = (uint32_t)t.n;
        } else {
            char tmp[32];
            if (t.n > 19) { perr(ps, t.pos, "integer literal too large%s", ""); return NULL; }
            memcpy(tmp, t.s, t.n);
            tmp[t.n] = 0;
            n->lit = fp_mk_int(strtoll(tmp, NULL, 10));
        }
        return n;
    }
    case T_DATE: case T_DATETIME: case T_TIME: {
        n = mk(ps, N_LIT, t.pos);
        n->lit.kind = t.t == T_DATE ? FP_DATE : t.t == T_TIME ? FP_TIME : FP_DATETIME;
        n->lit.s = arena_strndup(ps->a, t.s, t.n);
        n->lit.len = (uint32_t)t.n;
        fp_dt dt;
        if (!fp_dt_parse(t.s, t.n, t.t == T_TIME, &dt)) {
            perr(ps, t.pos, "bad date/time literal%s", "");
            return NULL;
        }
        return lex(ps) ? n : NULL;
    }
    case T_VAR:
        n = parse_var(ps, t);
        return n && lex(ps) ? n : NULL;
    case T_SPECIAL:
        if (t.n == 4 && !memcmp(t.s, "this", 4)) n = mk(ps, N_THIS, t.pos);
        else if (t.n == 5 && !memcmp(t.s, "index", 5)) n = mk(ps, N_INDEX, t.pos);
        else if (t.n == 5 && !memcmp(t.s, "total", 5)) n = mk(ps, N_TOTAL, t.pos);
        else { perr(ps, t.pos, "unknown special variable%s", ""); return NULL; }
        return lex(ps) ? n : NULL;
    case T_IDENT:
        if (tok_is_kw(&t, "true") || tok_is_kw(&t, "false")) {
            n = mk(ps, N_LIT, t.pos);
            n->lit = fp_mk_bool(t.s[0] == 't');
            return lex(ps) ? n : NULL;
        }
        return parse_invocation(ps, NULL);
    case T_OP:
        if (t.op == OP_SUB || t.op == OP_ADD) {
            if (!lex(ps)) return NULL;
            if (++ps->depth > 200) {
                perr(ps, t.pos, "expression nested too deeply%s", "");
                return NULL;
            }
            fp_node *inner = parse_term(ps);
            ps->depth--;
            if (!inner) return NULL;
            n = mk(ps, t.op == OP_SUB ? N_NEG : N_POS, t.pos);
            n->args = arena_alloc(ps->a, sizeof *n->args);
            n->args[0] = inner;
            n->nargs = 1;
            return n;
        }
        break;
    case T_EOF:
        perr(ps, t.pos, "unexpected end of expression%s", "");
        return NULL;
    default:
        break;
    }
    perr(ps, t.pos, "unexpected token%s", "");
    return NULL;
}

/* term followed by .invocation and [index] suffixes */
static fp_node *parse_postfix(parser *ps)
{
    if (++ps->depth > 200) { perr(ps, ps->cur.pos, "expression nested too deeply%s", ""); return NULL; }
    fp_node *n = parse_term(ps);
    while (n) {
        if (ps->cur.t == T_DOT) {
            if (!lex(ps)) return NULL;
            n = parse_invocation(ps, n);
        } else if (ps->cur.t == T_LB) {
            uint32_t pos = ps->cur.pos;
            if (!lex(ps)) return NULL;
            fp_node *idx = parse_expr(ps, 1);
            if (!idx) return NULL;
            if (ps->cur.t != T_RB) { perr(ps, ps->cur.pos, "expected ']'%s", ""); return NULL; }
            if (!lex(ps)) return NULL;
            fp_node *ix = mk(ps, N_INDEXER, pos);
            ix->base = n;
            ix->args = arena_alloc(ps->a, sizeof *ix->args);
            ix->args[0] = idx;
            ix->nargs = 1;
            n = ix;
        } else break;
    }
    ps->depth--;
    return n;
}

static fp_node *parse_expr(parser *ps, int min_prec)
{
    fp_node *l = parse_postfix(ps);
    while (l) {
        int op;
        int prec = binop(&ps->cur, &op);
        if (!prec || prec < min_prec) break;
        uint32_t pos = ps->cur.pos;
        if (!lex(ps)) return NULL;
        if (op < 0) {   /* is / as take a type specifier */
            const char *tn = parse_type_name(ps);
            if (!tn) return NULL;
            fp_node *n = mk(ps, op == -1 ? N_IS : N_AS, pos);
            n->name = tn;
            n->name_len = (uint32_t)strlen(tn);
            n->args = arena_alloc(ps->a, sizeof *n->args);
            n->args[0] = l;
            n->nargs = 1;
            l = n;
            continue;
        }
        fp_node *r = parse_expr(ps, prec + 1);
        if (!r) return NULL;
        fp_node *n = mk(ps, N_BIN, pos);
        n->op = (uint8_t)op;
        n->args = arena_alloc(ps->a, 2 * sizeof *n->args);
        n->args[0] = l;
        n->args[1] = r;
        n->nargs = 2;
        l = n;
    }
    return l;
}

fp_expr *fp_compile(const char *expr, const fp_env *env, fl_err *err)
{
    arena *a = arena_new(4096);
    if (!a) {
        fl_err_set(err, 500, "", "out of memory");
        return NULL;
    }
    fp_expr *e = arena_calloc(a, sizeof *e);
    e->a = a;
    e->src = arena_strdup(a, expr);
    parser ps = {.a = a, .src = e->src, .len = strlen(expr), .env = env, .err = err, .e = e};
    if (lex(&ps)) {
        if (ps.cur.t == T_EOF) perr(&ps, 0, "empty expression%s", "");
        else {
            e->root = parse_expr(&ps, 1);
            if (e->root && ps.cur.t != T_EOF) {
                e->root = NULL;
                perr(&ps, ps.cur.pos, "unexpected token after the end of the expression%s", "");
            }
        }
    }
    if (!e->root) {
        if (!err->status) fl_err_set(err, 400, "", "FHIRPath syntax error in '%s'", expr);
        fp_free(e);
        return NULL;
    }
    return e;
}

void fp_free(fp_expr *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->nregex; i++) {
        regfree(e->regex[i]);
        free(e->regex[i]);
    }
    free(e->regex);
    arena_free(e->a);
}

const char *fp_source(const fp_expr *e) { return e->src; }

/* ---- shape analysis (for column type inference) ---- */

size_t fp_path_names(const fp_expr *e, const char **names, size_t max)
{
    const fp_node *chain[64];
    size_t n = 0;
    for (const fp_node *x = e->root; x; x = x->base) {
        if (x->type != N_MEMBER || n == 64) return 0;
        chain[n++] = x;
    }
    if (n > max) return 0;
    for (size_t i = 0; i < n; i++) names[i] = chain[n - 1 - i]->name;
    return n;
}

bool fp_is_aidbox_ts(const fp_expr *e)
{
    return e->root->type == N_FUNC && !e->root->base && !strcmp(e->root->name, "getAidboxTs");
}

fp_shape fp_expr_shape(const fp_expr *e)
{
    const fp_node *r = e->root;
    if (r->type == N_MEMBER) {
        const char *nm[64];
        if (!r->base && !strcmp(r->name, "id")) return FP_SHAPE_RESOURCE_KEY;
        return fp_path_names(e, nm, 64) ? FP_SHAPE_PATH : FP_SHAPE_OTHER;
    }
    if (r->type == N_ROWINDEX) return FP_SHAPE_INT_FN;
    if (r->type == N_IS) return FP_SHAPE_BOOL_FN;
    if (r->type == N_LIT) {
        switch (r->lit.kind) {
        case FP_BOOL: return FP_SHAPE_BOOL_FN;
        case FP_INT: return FP_SHAPE_INT_FN;
        case FP_STR: return FP_SHAPE_STR_FN;
        default: return FP_SHAPE_OTHER;
        }
    }
    if (r->type == N_BIN) {
        switch (r->op) {
        case OP_LT: case OP_GT: case OP_LE: case OP_GE: case OP_EQ: case OP_NE:
        case OP_EQUIV: case OP_NEQUIV: case OP_IN: case OP_CONTAINS: case OP_AND:
        case OP_OR: case OP_XOR: case OP_IMPLIES:
            return FP_SHAPE_BOOL_FN;
        case OP_CONCAT: return FP_SHAPE_STR_FN;
        default: return FP_SHAPE_OTHER;
        }
    }
    if (r->type != N_FUNC) return FP_SHAPE_OTHER;
    static const struct { const char *fn; fp_shape s; } m[] = {
        {"exists", FP_SHAPE_BOOL_FN}, {"empty", FP_SHAPE_BOOL_FN}, {"not", FP_SHAPE_BOOL_FN},
        {"all", FP_SHAPE_BOOL_FN}, {"allTrue", FP_SHAPE_BOOL_FN}, {"anyTrue", FP_SHAPE_BOOL_FN},
        {"allFalse", FP_SHAPE_BOOL_FN}, {"anyFalse", FP_SHAPE_BOOL_FN},
        {"hasValue", FP_SHAPE_BOOL_FN}, {"startsWith", FP_SHAPE_BOOL_FN},
        {"endsWith", FP_SHAPE_BOOL_FN}, {"matches", FP_SHAPE_BOOL_FN},
        {"isDistinct", FP_SHAPE_BOOL_FN}, {"is", FP_SHAPE_BOOL_FN},
        {"count", FP_SHAPE_INT_FN}, {"length", FP_SHAPE_INT_FN}, {"indexOf", FP_SHAPE_INT_FN},
        {"toInteger", FP_SHAPE_INT_FN}, {"toDecimal", FP_SHAPE_DEC_FN},
        {"join", FP_SHAPE_STR_FN}, {"toString", FP_SHAPE_STR_FN}, {"lower", FP_SHAPE_STR_FN},
        {"upper", FP_SHAPE_STR_FN}, {"substring", FP_SHAPE_STR_FN},
        {"replace", FP_SHAPE_STR_FN}, {"trim", FP_SHAPE_STR_FN},
        {"getReferenceKey", FP_SHAPE_STR_FN}, {"getAidboxTxid", FP_SHAPE_STR_FN},
        {"getResourceKey", FP_SHAPE_RESOURCE_KEY},
        {"getAidboxTs", FP_SHAPE_TS_FN}, {"getAidboxCts", FP_SHAPE_TS_FN}};
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        if (!strcmp(r->name, m[i].fn)) {
            if (m[i].s == FP_SHAPE_RESOURCE_KEY && r->base) return FP_SHAPE_STR_FN;
            return m[i].s;
        }
    return FP_SHAPE_OTHER;
}

/* ---- static result type (for column types) ---- */

static const char *sys_to_fhir(const char *t)
{
    static const char *m[][2] = {{"String", "string"}, {"Integer", "integer"},
                                 {"Decimal", "decimal"}, {"Boolean", "boolean"},
                                 {"Date", "date"}, {"DateTime", "dateTime"}, {"Time", "time"}};
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        if (!strcmp(t, m[i][0])) return m[i][1];
    return t;
}

static bool is_int_type(const char *t)
{
    return t && (!strcmp(t, "integer") || !strcmp(t, "positiveInt") || !strcmp(t, "unsignedInt"));
}

static const char *infer(const fp_node *n, const char *focus);

static const char *infer_func(const fp_node *n, const char *focus)
{
    static const char *same[] = {"first", "last", "single", "where", "tail", "skip", "take",
                                 "distinct", "trace", "lowBoundary", "highBoundary", "intersect",
                                 "exclude"};
    static const struct { const char *fn, *t; } fixed[] = {
        {"exists", "boolean"}, {"empty", "boolean"}, {"not", "boolean"}, {"all", "boolean"},
        {"allTrue", "boolean"}, {"anyTrue", "boolean"}, {"allFalse", "boolean"},
        {"anyFalse", "boolean"}, {"hasValue", "boolean"}, {"startsWith", "boolean"},
        {"endsWith", "boolean"}, {"contains", "boolean"}, {"matches", "boolean"},
        {"isDistinct", "boolean"}, {"is", "boolean"}, {"subsetOf", "boolean"},
        {"supersetOf", "boolean"}, {"toBoolean", "boolean"}, {"count", "integer"},
        {"length", "integer"}, {"indexOf", "integer"}, {"toInteger", "integer"},
        {"ceiling", "integer"}, {"floor", "integer"}, {"truncate", "integer"},
        {"toDecimal", "decimal"}, {"round", "decimal"}, {"join", "string"},
        {"toString", "string"}, {"lower", "string"}, {"upper", "string"},
        {"substring", "string"}, {"replace", "string"}, {"replaceMatches", "string"},
        {"trim", "string"}, {"split", "string"}, {"getResourceKey", "id"},
        {"getReferenceKey", "id"}, {"getAidboxTxid", "string"}, {"getAidboxTs", "instant"},
        {"getAidboxCts", "instant"}, {"toDate", "date"}, {"toDateTime", "dateTime"},
        {"toTime", "time"}, {"now", "dateTime"}, {"today", "date"},
        {"lastIndexOf", "integer"}, {"toChars", "string"}, {"encode", "string"},
        {"decode", "string"}, {"sqrt", "decimal"}, {"exp", "decimal"}, {"ln", "decimal"},
        {"log", "decimal"}, {"power", "decimal"}};
    const char *base = n->base ? infer(n->base, focus) : focus;
    for (size_t i = 0; i < sizeof same / sizeof *same; i++)
        if (!strcmp(n->name, same[i])) return base;
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (!strcmp(n->name, fixed[i].fn)) return fixed[i].t;
    if (!strncmp(n->name, "convertsTo", 10)) return "boolean";
    if (!strcmp(n->name, "ofType") || !strcmp(n->name, "as")) return sys_to_fhir(n->tname);
    if (!strcmp(n->name, "abs")) return base;
    if (!strcmp(n->name, "iif") && n->nargs == 3) {
        const char *a = infer(n->args[1], focus), *b = infer(n->args[2], focus);
        return a && b && !strcmp(a, b) ? a : NULL;
    }
    if (!strcmp(n->name, "select")) return infer(n->args[0], base);
    return NULL;
}

static const char *infer_bin(const fp_node *n, const char *focus)
{
    switch (n->op) {
    case OP_LT: case OP_GT: case OP_LE: case OP_GE: case OP_EQ: case OP_NE: case OP_EQUIV:
    case OP_NEQUIV: case OP_IN: case OP_CONTAINS: case OP_AND: case OP_OR: case OP_XOR:
    case OP_IMPLIES:
        return "boolean";
    case OP_CONCAT: return "string";
    case OP_UNION: {
        const char *a = infer(n->args[0], focus), *b = infer(n->args[1], focus);
        return a && b && !strcmp(a, b) ? a : NULL;
    }
    default: {
        const char *a = infer(n->args[0], focus), *b = infer(n->args[1], focus);
        if (!a || !b) return NULL;
        bool ai = is_int_type(a), bi = is_int_type(b);
        bool ad = ai || !strcmp(a, "decimal"), bd = bi || !strcmp(b, "decimal");
        if (ad && bd) {
            if (n->op == OP_DIV) return "decimal";
            if (n->op == OP_IDIV) return "integer";
            return ai && bi ? "integer" : "decimal";
        }
        if (n->op == OP_ADD && !strcmp(a, "string") && !strcmp(b, "string")) return "string";
        return NULL;
    }
    }
}

static const char *infer(const fp_node *n, const char *focus)
{
    switch (n->type) {
    case N_LIT:
        switch (n->lit.kind) {
        case FP_BOOL: return "boolean";
        case FP_INT: return "integer";
        case FP_DEC: return "decimal";
        case FP_STR: return "string";
        case FP_DATE: return "date";
        case FP_DATETIME: return "dateTime";
        case FP_TIME: return "time";
        default: return NULL;
        }
    case N_THIS: return focus;
    case N_ROWINDEX: case N_INDEX: return "integer";
    case N_MEMBER: {
        const char *pt = n->base ? infer(n->base, focus) : focus;
        if (!pt) return NULL;
        if (!n->base && !strcmp(n->name, pt)) return pt;   /* Patient.x */
        const fhir_elem_ent *e = fhir_element(pt, strlen(pt), n->name, n->name_len);
        return e ? e->type : NULL;
    }
    case N_FUNC: return infer_func(n, focus);
    case N_INDEXER: return infer(n->base, focus);
    case N_NEG: case N_POS: return infer(n->args[0], focus);
    case N_BIN: return infer_bin(n, focus);
    case N_IS: return "boolean";
    case N_AS: return sys_to_fhir(n->name);
    default: return NULL;
    }
}

const char *fp_infer_type(const fp_expr *e, const char *focus_type)
{
    return infer(e->root, focus_type);
}
