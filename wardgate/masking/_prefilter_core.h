/*
 * The matching core of wardgate.masking._prefilter, shared by the modules that call it (_prefilter.c, _bulk.c).
 *
 * scan(p, n, det) answers exactly what wardgate.masking.detectors.Prefilter.may_match answers for p[0..n) and
 * the built-in detectors whose bits are set in det: see the top of _prefilter.c for how. Everything here is
 * static, so each module that includes this file gets its own copy (nothing is exported between modules).
 * Include <Python.h> first (for Py_ssize_t).
 */
#ifndef WARDGATE_PREFILTER_CORE_H
#define WARDGATE_PREFILTER_CORE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Detector bits, in the order of BUILTIN_DETECTORS (exported as ORDER). */
enum {
    D_PEM = 1u << 0,
    D_JWT = 1u << 1,
    D_AWS = 1u << 2,
    D_GITHUB = 1u << 3,
    D_STRIPE = 1u << 4,
    D_SLACK = 1u << 5,
    D_EMAIL = 1u << 6,
    D_IBAN = 1u << 7,
    D_CARD = 1u << 8,
    D_SSN = 1u << 9,
    D_PHONE = 1u << 10,
    D_IPV6 = 1u << 11,
    D_IPV4 = 1u << 12,
    D_COUNT = 13,
    D_ALL = (1u << D_COUNT) - 1,
    D_DIGIT_RUNS = D_IBAN | D_CARD | D_SSN | D_PHONE | D_IPV4,
};

/* Byte classes (bit flags), for the checks around a stop. */
enum {
    C_DIGIT = 1u << 0,  /* 0-9: "9" in the reference's class translation */
    C_UPPER = 1u << 1,  /* A-Z: "A" */
    C_HEX = 1u << 2,    /* 0-9 A-F a-f: an IPv6 group */
    C_LOCAL = 1u << 3,  /* [A-Za-z0-9._%+'\x80-\xff-]: may end an e-mail local part */
    C_SP_DASH = 1u << 4, /* [ -]: card and SSN group separators */
    C_DASH_DOT = 1u << 5, /* [-.]: NANP separators */
    C_GH = 1u << 6,     /* [pousr]: gh?_ GitHub token prefixes */
    C_SLACK = 1u << 7,  /* [abpr]: xox?- Slack token prefixes */
};

/* The tables are constant expressions, so that they are built by the compiler: no initialisation step, nothing
   written at import, nothing shared that changes. */
#define IN(b, lo, hi) ((b) >= (lo) && (b) <= (hi))
#define CLS(b) ( \
    (IN(b, '0', '9') ? C_DIGIT | C_HEX | C_LOCAL : 0) \
    | (IN(b, 'A', 'Z') ? C_UPPER | C_LOCAL : 0) \
    | (IN(b, 'a', 'z') ? C_LOCAL : 0) \
    | (IN(b, 'A', 'F') || IN(b, 'a', 'f') ? C_HEX : 0) \
    | ((b) >= 0x80 || (b) == '.' || (b) == '_' || (b) == '%' || (b) == '+' || (b) == '\'' || (b) == '-' \
       ? C_LOCAL : 0) \
    | ((b) == ' ' || (b) == '-' ? C_SP_DASH : 0) \
    | ((b) == '-' || (b) == '.' ? C_DASH_DOT : 0) \
    | ((b) == 'p' || (b) == 'o' || (b) == 'u' || (b) == 's' || (b) == 'r' ? C_GH : 0) \
    | ((b) == 'a' || (b) == 'b' || (b) == 'p' || (b) == 'r' ? C_SLACK : 0))
/* For each byte: the detectors that must look at it (masked with the chosen set per call). The raw triggers stop
   at one byte each: the J of eyJ, the I of A[KS]IA, the V of PRIVATE KEY, the last _ of gh[pousr]_, github_pat_
   and k_live_, the - of xox[abpr]-. */
#define STOP(b) ( \
    (IN(b, '0', '9') ? D_DIGIT_RUNS : 0) \
    | ((b) == '@' ? D_EMAIL : 0) \
    | ((b) == ':' ? D_IPV6 : 0) \
    | ((b) == 'J' ? D_JWT : 0) \
    | ((b) == 'I' ? D_AWS : 0) \
    | ((b) == 'V' ? D_PEM : 0) \
    | ((b) == '_' ? D_GITHUB | D_STRIPE : 0) \
    | ((b) == '-' ? D_SLACK : 0))
#define ROW(F, b) F((b) + 0), F((b) + 1), F((b) + 2), F((b) + 3), F((b) + 4), F((b) + 5), F((b) + 6), F((b) + 7), \
    F((b) + 8), F((b) + 9), F((b) + 10), F((b) + 11), F((b) + 12), F((b) + 13), F((b) + 14), F((b) + 15)
#define TABLE(F) ROW(F, 0x00), ROW(F, 0x10), ROW(F, 0x20), ROW(F, 0x30), ROW(F, 0x40), ROW(F, 0x50), \
    ROW(F, 0x60), ROW(F, 0x70), ROW(F, 0x80), ROW(F, 0x90), ROW(F, 0xA0), ROW(F, 0xB0), ROW(F, 0xC0), \
    ROW(F, 0xD0), ROW(F, 0xE0), ROW(F, 0xF0)

static const uint8_t cls[256] = {TABLE(CLS)};
static const uint16_t stops[256] = {TABLE(STOP)};

#define IS(b, flag) (cls[(uint8_t)(b)] & (flag))

/* The detectors argument of the modules' functions: an int, a bit set of the built-in detectors from `least`
   (0, or 1 where an empty set makes no sense) to D_ALL. Returns 0, or -1 with TypeError/ValueError set naming
   `fn`. */
static int
detector_bits(PyObject *arg, const char *fn, long least, unsigned *det)
{
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s() detectors must be an int, not %.100s", fn, Py_TYPE(arg)->tp_name);
        return -1;
    }
    int overflow = 0;
    long d = PyLong_AsLongAndOverflow(arg, &overflow);
    if (d == -1 && PyErr_Occurred()) return -1;
    if (overflow || d < least || d > (long)D_ALL) {
        PyErr_Format(PyExc_ValueError, "%s() detectors must be a %sbit set of the %d built-in detectors (%ld to %d)",
                     fn, least > 0 ? "non-empty " : "", D_COUNT, least, (int)D_ALL);
        return -1;
    }
    *det = (unsigned)d;
    return 0;
}

/* Are p[a..b] (inclusive) all digits? (a >= 0 is the caller's business.) */
static inline int
digits(const uint8_t *p, Py_ssize_t a, Py_ssize_t b)
{
    for (Py_ssize_t k = a; k <= b; k++)
        if (!IS(p[k], C_DIGIT)) return 0;
    return 1;
}

/* For each byte: the detectors with a class trigger that a digit run preceded by that byte may complete (besides
   the thirteen digits of a card, which any byte may precede). A run after any other byte (a letter, "_", a length
   header) is cleared with one lookup: most runs in ordinary values. */
#define LEAD(b) ( \
    ((b) == '+' || (b) == '(' ? D_PHONE : 0) \
    | ((b) == '-' ? D_PHONE | D_CARD | D_SSN : 0) \
    | ((b) == '.' ? D_PHONE | D_IPV4 : 0) \
    | ((b) == ' ' ? D_CARD | D_SSN : 0) \
    | (IN(b, 'A', 'Z') ? D_IBAN : 0))
static const uint16_t leads[256] = {TABLE(LEAD)};

/* The class triggers (and E.164's raw "+[1-9]") for the maximal digit run p[s..e).

   The grouped shapes (NANP 999[-.]999[-.]9999, cards 9999[ -]9{3,6}[ -]999, SSN 999[ -]99[ -]9999) all end in
   this run after a separator, with a whole group of digits before that separator and another separator before
   the group; so the group's length g and the byte c2 before it are found once, and each shape is a comparison on
   them plus the digits before c2. */
static inline int
digit_run_triggers(const uint8_t *p, Py_ssize_t n, Py_ssize_t s, Py_ssize_t e, unsigned det)
{
    Py_ssize_t len = e - s;
    uint8_t before = s >= 1 ? p[s - 1] : 0;  /* 0 stands for "nothing": it leads no trigger */
    unsigned lead = leads[before] & det;
    if (!lead) return (det & D_CARD) && len >= 13;  /* class 9999999999999 */
    if ((det & D_CARD) && len >= 13) return 1;
    if (lead & D_PHONE) {
        if (before == '+') return p[s] != '0';  /* raw \+[1-9]; nothing else follows a + */
        if (before == '(') return len == 3 && s + 3 < n && p[e] == ')';  /* class \(999\) */
    }
    if (lead & D_IBAN) {  /* class AA99[A9]{11} or AA99 [A9]{4} [A9]{4}: this run starts with the check digits */
        if (len >= 2 && s >= 2 && IS(p[s - 2], C_UPPER)) {
            Py_ssize_t q = s + 2, k = q;
            while (k < n && k - q < 11 && IS(p[k], C_UPPER | C_DIGIT)) k++;
            if (k - q >= 11) return 1;
            if (q + 10 <= n && p[q] == ' ' && p[q + 5] == ' ') {
                int ok = 1;
                for (Py_ssize_t j = 1; j <= 9 && ok; j++)
                    if (j != 5 && !IS(p[q + j], C_UPPER | C_DIGIT)) ok = 0;
                if (ok) return 1;
            }
        }
        return 0;  /* an upper-case letter leads nothing else */
    }
    if ((lead & D_IPV4) && len <= 3 && s >= 2 && IS(p[s - 2], C_DIGIT) && e < n && p[e] == '.')
        return 1;  /* class 9.9. / 9.99. / 9.999.: this run is the middle one */
    /* The grouped shapes: before is a separator; the group before it p[gs..s-2] (g digits, counted up to 7) */
    if (len < 3 || s < 2 || !IS(p[s - 2], C_DIGIT)) return 0;
    Py_ssize_t gs = s - 2;
    while (gs > 0 && IS(p[gs - 1], C_DIGIT) && s - 1 - gs < 7) gs--;
    Py_ssize_t g = s - 1 - gs;
    if (gs < 1) return 0;  /* each shape has a separator and more digits before the group */
    uint8_t c2 = p[gs - 1];
    if ((lead & D_PHONE) && g == 3 && len >= 4 && IS(before, C_DASH_DOT) && IS(c2, C_DASH_DOT) && gs >= 4
        && digits(p, gs - 4, gs - 2))
        return 1;
    if ((lead & D_CARD) && g >= 3 && g <= 6 && IS(c2, C_SP_DASH) && gs >= 5 && digits(p, gs - 5, gs - 2))
        return 1;
    if ((lead & D_SSN) && g == 2 && len >= 4 && IS(c2, C_SP_DASH) && gs >= 4 && digits(p, gs - 4, gs - 2))
        return 1;
    return 0;
}

/* IPv6's raw trigger from the colon at p[i]: "::" or ":h:h:h:" with 1-4 hex digits per h. */
static inline int
ipv6_trigger(const uint8_t *p, Py_ssize_t n, Py_ssize_t i)
{
    Py_ssize_t j = i + 1;
    if (j < n && p[j] == ':') return 1;
    for (int group = 0; group < 3; group++) {
        Py_ssize_t h = 0;
        while (h < 4 && j + h < n && IS(p[j + h], C_HEX)) h++;
        if (h == 0 || j + h >= n || p[j + h] != ':') return 0;  /* a fifth hex digit is no ':' */
        j += h + 1;
    }
    return 1;
}

/* Does p[i-k..i) equal the k bytes of lit? */
static inline int
ends_with(const uint8_t *p, Py_ssize_t i, const char *lit, Py_ssize_t k)
{
    return i >= k && memcmp(p + i - k, lit, (size_t)k) == 0;
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* A value of at most QUICK_MAX bytes that passes quick_clear() holds no trigger of any detector: scan() answers 0
   for it whatever the detector set, without the byte loop below.

   Why: in ordinary short values (names, codes like ORD-2024-000123, handles like user_123) the loop stops at
   every digit run, '-' and '_' to look around it, and each stop costs a mispredicted branch (~15 cycles), which
   made such a stop-heavy column cost 3-4 times what its length does. Here the same value is classified 16 bytes
   at once and every trigger is tested as a bit mask, with one (predictable) branch per value.

   The test is a necessary condition of each trigger of scan() (a superset, never a subset): a value it does not
   clear goes through the loop as before, so the answer is the loop's in every case. Per trigger, what it needs:
   - a run of 13 digits (cards): the run itself;
   - the grouped shapes (card, SSN and NANP groups, IPv4's 9.9.): two separators ([ -.]) each right after a
     digit, and then either one of them followed by three digits (the last group) or two of them dots (IPv4);
   - "+" or "(" before a digit (E.164, (999)); two upper-case letters before a digit (IBAN);
   - "@" after any byte (e-mail); "::" or four colons (IPv6);
   - yJ (eyJ), [KS]I (A[KS]IA), IV (PRIVATE KEY), [hav] two bytes before "_" (gh?_, github_pat_, sk_live_),
     x two bytes before "-" (xox?-).
   Bytes past the value are zeroed first; a zero byte is in no class, so "before the value" is "no byte". */
#define QUICK_MAX 16

__attribute__((noinline)) static int
quick_clear(const uint8_t *p, Py_ssize_t n, Py_ssize_t avail)
{
    __m128i v;
    if (avail >= 16) {
        v = _mm_loadu_si128((const __m128i *)p);
    }
    else {
        uint8_t tmp[16] = {0};
        memcpy(tmp, p, (size_t)n);
        v = _mm_loadu_si128((const __m128i *)tmp);
    }
    const __m128i iota = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    v = _mm_and_si128(v, _mm_cmpgt_epi8(_mm_set1_epi8((char)n), iota));
#define Q_EQ(c) _mm_cmpeq_epi8(v, _mm_set1_epi8((char)(c)))
#define Q_BEFORE(x, k) _mm_slli_si128((x), (k))  /* lane i holds lane i-k of x: "k bytes before" */
#define Q_AFTER(x, k) _mm_srli_si128((x), (k))   /* lane i holds lane i+k of x: "k bytes after" */
#define Q_OR(a, b) _mm_or_si128((a), (b))
#define Q_AND(a, b) _mm_and_si128((a), (b))
    __m128i t = _mm_sub_epi8(v, _mm_set1_epi8('0'));
    const __m128i dig = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(9)), t);
    t = _mm_sub_epi8(v, _mm_set1_epi8('A'));
    const __m128i up = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(25)), t);
    const __m128i dash = Q_EQ('-'), dot = Q_EQ('.'), colon = Q_EQ(':'), eye = Q_EQ('I');

    /* The triggers made of a byte and its neighbours. */
    const __m128i byte = _mm_xor_si128(Q_EQ(0), _mm_set1_epi8(-1));
    __m128i hit = Q_AND(dig, Q_AND(Q_BEFORE(up, 1), Q_BEFORE(up, 2)));
    hit = Q_OR(hit, Q_AND(Q_OR(Q_EQ('+'), Q_EQ('(')), Q_AFTER(dig, 1)));
    hit = Q_OR(hit, Q_AND(Q_EQ('@'), Q_BEFORE(byte, 1)));
    hit = Q_OR(hit, Q_AND(colon, Q_AFTER(colon, 1)));
    hit = Q_OR(hit, Q_AND(Q_EQ('J'), Q_BEFORE(Q_EQ('y'), 1)));
    hit = Q_OR(hit, Q_AND(eye, Q_BEFORE(Q_OR(Q_EQ('K'), Q_EQ('S')), 1)));
    hit = Q_OR(hit, Q_AND(Q_EQ('V'), Q_BEFORE(eye, 1)));
    hit = Q_OR(hit, Q_AND(Q_EQ('_'), Q_BEFORE(Q_OR(Q_OR(Q_EQ('h'), Q_EQ('a')), Q_EQ('v')), 2)));
    hit = Q_OR(hit, Q_AND(dash, Q_BEFORE(Q_EQ('x'), 2)));
    if (_mm_movemask_epi8(hit)) return 0;

    const __m128i after_digit = Q_BEFORE(dig, 1);
    const __m128i sep = Q_AND(Q_OR(Q_OR(Q_EQ(' '), dash), dot), after_digit);
    const unsigned seps = (unsigned)_mm_movemask_epi8(sep);
    if (seps & (seps - 1)) {  /* two separators after digits: a grouped shape if a group of three ends it */
        const __m128i last3 = Q_AND(Q_AFTER(dig, 1), Q_AND(Q_AFTER(dig, 2), Q_AFTER(dig, 3)));
        if (_mm_movemask_epi8(Q_AND(sep, last3))) return 0;
        const unsigned dots = (unsigned)_mm_movemask_epi8(Q_AND(dot, after_digit));
        if (dots & (dots - 1)) return 0;
    }
    unsigned run = (unsigned)_mm_movemask_epi8(dig);  /* runs of 2, 4, 8, then 13 digits, ending at each bit */
    run &= run << 1;
    run &= run << 2;
    run &= run << 4;
    if (run & (run << 5)) return 0;
    unsigned c = (unsigned)_mm_movemask_epi8(colon);  /* four colons? (no popcount instruction in baseline x86-64) */
    c &= c - 1;
    c &= c - 1;
    c &= c - 1;
    if (c) return 0;
#undef Q_EQ
#undef Q_BEFORE
#undef Q_AFTER
#undef Q_OR
#undef Q_AND
    return 1;
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_REGION_TEST 1

/* The span of a row from its first to its last scanned value (length headers and unscanned values between them
   included) holds no trigger of any detector when region_clear_avx2() says so: every value in it then gets 0
   from scan(), whatever the detector set. The conditions are quick_clear()'s, over up to REGION_MAX bytes as
   64-bit masks. Each condition is necessary
   for its trigger inside one value, and a value's bytes are all in the span, so the test is a superset: headers
   and other values only add false alarms, after which the row's values are scanned one by one as before. Why:
   one test per row of short values instead of one loop per value; on rows of a name, a handle and a code, the
   prefilter's time per 1,000 rows went from 35 to 23-25 us (the row walk is 7 of it). */
#define REGION_MAX 64

/* The pair triggers as one AND of three byte classes: the byte itself (V0), the byte before it (M1) and two before
   (M2), each looked up by nibble (vpshufb) in the tables below, one bit per condition, each anchored at its last
   byte: bit 0 a digit after [+(]; 1 a digit after two upper-case letters; 2 "@" after any byte; 3 "::"; 4 "yJ";
   5 [IV] after [KSI] (covers [KS]I and IV); 6 "_" two after [hav]; 7 "-" two after "x". A byte set that is not
   a product of a low-nibble set and a high-nibble set is widened to one that is (upper case: 0x40-0x5F), and a
   role that does not take part in a condition has its bit set for every byte: both only add false alarms.
   (Anchoring every pair at its last byte saves a fourth class, the byte after.)
   tests/unit/test_datarow_may_match_native.py puts the smallest form of every trigger in a short row, at each
   offset in both 32-byte halves, so that a bit missing from a table fails there. */
static const uint8_t region_luts[6][16] = {
    {0x07, 0x03, 0x03, 0x03, 0x03, 0x03, 0x23, 0x03, 0x03, 0x23, 0x18, 0x00, 0x00, 0x80, 0x00, 0x40},  /* V0, low */
    {0x00, 0x00, 0x80, 0x0b, 0x34, 0x60, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  /* V0, high */
    {0xc6, 0xc6, 0xc6, 0xe6, 0xc6, 0xc6, 0xc6, 0xc6, 0xc7, 0xf6, 0xce, 0xe7, 0xc6, 0xc6, 0xc6, 0xc6},  /* M1, low */
    {0xc4, 0xc4, 0xc5, 0xcc, 0xe6, 0xe6, 0xc4, 0xd4, 0xc4, 0xc4, 0xc4, 0xc4, 0xc4, 0xc4, 0xc4, 0xc4},  /* M1, high */
    {0x3f, 0x7f, 0x3f, 0x3f, 0x3f, 0x3f, 0x7f, 0x3f, 0xff, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f},  /* M2, low */
    {0x3d, 0x3d, 0x3d, 0x3d, 0x3f, 0x3f, 0x7d, 0xfd, 0x3d, 0x3d, 0x3d, 0x3d, 0x3d, 0x3d, 0x3d, 0x3d},  /* M2, high */
};
enum { ROLE_V0, ROLE_M1, ROLE_M2 };

/* The classes of the bytes of v in one role: the AND of the lookups of the low and the high nibble. */
__attribute__((target("avx2,popcnt"))) static inline __m256i
region_class(__m256i v, int role)
{
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)region_luts[2 * role]));
    const __m256i hi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)region_luts[2 * role + 1]));
    return _mm256_and_si256(_mm256_shuffle_epi8(lo, _mm256_and_si256(v, nibble)),
                            _mm256_shuffle_epi8(hi, _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble)));
}

/* The verdict on a region from its byte masks, bit i for byte i (valid: the region's bytes): hit, a pair trigger
   ends there; dig, a digit; sep, [ -.]; dot, "."; colon, ":". The scalar half of the region test, shared by its
   AVX2 and AVX-512 forms (inlined into each, so that the popcount is their instruction). */
static inline __attribute__((always_inline)) int
region_verdict(uint64_t valid, uint64_t hit, uint64_t dig, uint64_t sep, uint64_t dot, uint64_t colon)
{
    if (hit & valid) return 0;
    dig &= valid;
    sep &= valid & (dig << 1);  /* [ -.] right after a digit */
    if (sep & (sep - 1)) {  /* two of them: a grouped shape if a group of three ends one, IPv4 if two are dots */
        if (sep & (dig >> 1) & (dig >> 2) & (dig >> 3)) return 0;
        const uint64_t dots = dot & valid & (dig << 1);
        if (dots & (dots - 1)) return 0;
    }
    uint64_t run = dig & (dig << 1);  /* runs of 2, 4, 8, then 13 digits, ending at each bit */
    run &= run << 2;
    run &= run << 4;
    if (run & (run << 5)) return 0;
    if (__builtin_popcountll(colon & valid) >= 4) return 0;
    return 1;
}

/* Reads p[-2 .. 64) when avail (the bytes readable from p) allows, else a zero-padded copy of p[-2 .. n): a value
   always has its four-byte length header before it. */
__attribute__((target("avx2,popcnt"))) static inline int
region_clear_avx2(const uint8_t *p, Py_ssize_t n, Py_ssize_t avail)
{
    uint8_t tmp[2 + REGION_MAX];
    if (avail < REGION_MAX) {
        memset(tmp, 0, sizeof tmp);
        memcpy(tmp, p - 2, (size_t)n + 2);
        p = tmp + 2;
    }
    const uint64_t valid = n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1);
    uint64_t hit = 0, dig = 0, sep = 0, dot = 0, colon = 0;
    for (int half = 0; half < 2; half++) {
        const uint8_t *q = p + 32 * half;
        const __m256i v = _mm256_loadu_si256((const __m256i *)q);
        const __m256i pair = _mm256_and_si256(
            _mm256_and_si256(region_class(v, ROLE_V0),
                             region_class(_mm256_loadu_si256((const __m256i *)(q - 1)), ROLE_M1)),
            region_class(_mm256_loadu_si256((const __m256i *)(q - 2)), ROLE_M2));
        const __m256i zero = _mm256_setzero_si256();
        const __m256i t = _mm256_sub_epi8(v, _mm256_set1_epi8('0'));
        const __m256i d = _mm256_cmpeq_epi8(_mm256_min_epu8(t, _mm256_set1_epi8(9)), t);
        const __m256i dt = _mm256_cmpeq_epi8(v, _mm256_set1_epi8('.'));
        const __m256i sp = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(' ')), dt),
                                           _mm256_cmpeq_epi8(v, _mm256_set1_epi8('-')));
        const int shift = 32 * half;
        hit |= (uint64_t)(uint32_t)~_mm256_movemask_epi8(_mm256_cmpeq_epi8(pair, zero)) << shift;
        dig |= (uint64_t)(uint32_t)_mm256_movemask_epi8(d) << shift;
        sep |= (uint64_t)(uint32_t)_mm256_movemask_epi8(sp) << shift;
        dot |= (uint64_t)(uint32_t)_mm256_movemask_epi8(dt) << shift;
        colon |= (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(':'))) << shift;
        if (n <= 32) break;
    }
    return region_verdict(valid, hit, dig, sep, dot, colon);
}

#define REGION_AVX512 "avx512f,avx512bw,popcnt"

/* region_class() on 64 bytes. */
__attribute__((target(REGION_AVX512))) static inline __m512i
region_class512(__m512i v, int role)
{
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    const __m512i lo = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)region_luts[2 * role]));
    const __m512i hi = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)region_luts[2 * role + 1]));
    return _mm512_and_si512(_mm512_shuffle_epi8(lo, _mm512_and_si512(v, nibble)),
                            _mm512_shuffle_epi8(hi, _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble)));
}

/* region_clear_avx2() in one 64-byte step, the comparisons straight into bit masks. The loads are masked to
   p[-2 .. n) (a masked-off byte reads as 0 and is never touched, so no copy near the buffer's end); the masks
   are then what the AVX2 form computes on the region's bytes. Why: half the vector instructions of the two
   32-byte halves and their movemask merges, on a test that runs once per row of every masked result. */
__attribute__((target(REGION_AVX512))) static inline int
region_clear_avx512(const uint8_t *p, Py_ssize_t n)
{
    const __mmask64 valid = n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1);
    const __m512i v = _mm512_maskz_loadu_epi8(valid, p);
    const __m512i pair = _mm512_ternarylogic_epi64(
        region_class512(v, ROLE_V0), region_class512(_mm512_maskz_loadu_epi8(valid, p - 1), ROLE_M1),
        region_class512(_mm512_maskz_loadu_epi8(valid, p - 2), ROLE_M2), 0x80);  /* a & b & c */
    const uint64_t dot = _mm512_mask_cmpeq_epi8_mask(valid, v, _mm512_set1_epi8('.'));
    return region_verdict(
        valid, _mm512_mask_test_epi8_mask(valid, pair, pair),
        _mm512_mask_cmple_epu8_mask(valid, _mm512_sub_epi8(v, _mm512_set1_epi8('0')), _mm512_set1_epi8(9)),
        dot | _mm512_mask_cmpeq_epi8_mask(valid, v, _mm512_set1_epi8(' '))
            | _mm512_mask_cmpeq_epi8_mask(valid, v, _mm512_set1_epi8('-')),
        dot, _mm512_mask_cmpeq_epi8_mask(valid, v, _mm512_set1_epi8(':')));
}

/* The widest region test this CPU runs: 2 (AVX-512BW), 1 (AVX2) or 0 (none: every value is scanned). Asked
   once. WARDGATE_PREFILTER_ISA in the environment caps it ("avx2", or "portable" for none), so that the tests
   run every path on a CPU that has them all. */
static inline int
region_level(void)
{
    static int level = -1;
    if (level < 0) {
        const char *cap = getenv("WARDGATE_PREFILTER_ISA");
        const int most = cap == NULL ? 2 : strcmp(cap, "portable") == 0 ? 0 : strcmp(cap, "avx2") == 0 ? 1 : 2;
        __builtin_cpu_init();
        level = most >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? 2
              : most >= 1 && __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return level;
}
#endif

/* The whole question for p[0..n) and the detector set det (non-empty, within D_ALL); avail is how many bytes
   from p may be read (at least n: the rest of the caller's buffer), which lets a short value be classified
   without a copy. */
static int
scan_in(const uint8_t *p, Py_ssize_t n, unsigned det, Py_ssize_t avail)
{
#if defined(__SSE2__)
    /* The loop is cheapest where it stops rarely, or only at digit runs (ids, amounts: those it clears with a
       lookup or two): the vector test is tried at the first stop that is not a digit. */
    int quick = n <= QUICK_MAX;
#else
    (void)avail;
#endif
    Py_ssize_t i = 0;
    for (;;) {
        /* Skip bytes no chosen detector stops at: the hot loop, unrolled by four. */
        while (i + 4 <= n) {
            if (stops[p[i]] & det) goto stop;
            if (stops[p[i + 1]] & det) { i += 1; goto stop; }
            if (stops[p[i + 2]] & det) { i += 2; goto stop; }
            if (stops[p[i + 3]] & det) { i += 3; goto stop; }
            i += 4;
        }
        while (i < n && !(stops[p[i]] & det)) i++;
        if (i >= n) return 0;
    stop:
#if defined(__SSE2__)
        if (quick && !IS(p[i], C_DIGIT)) {
            quick = 0;
            if (quick_clear(p, n, avail)) return 0;
        }
#endif
        switch (p[i]) {
        case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9': {
            Py_ssize_t e = i + 1;
            while (e < n && IS(p[e], C_DIGIT)) e++;
            if (digit_run_triggers(p, n, i, e, det)) return 1;
            i = e;  /* p[e] is no digit: the loop looks at it next */
            continue;
        }
        case '@':  /* raw @(?<=[A-Za-z0-9._%+'\x80-\xff-]@) */
            if (i >= 1 && IS(p[i - 1], C_LOCAL)) return 1;
            break;
        case ':':
            if (ipv6_trigger(p, n, i)) return 1;
            break;
        case 'J':  /* raw J(?<=eyJ) */
            if (ends_with(p, i, "ey", 2)) return 1;
            break;
        case 'I':  /* raw IA(?<=A[KS]IA) */
            if (i >= 2 && i + 1 < n && p[i + 1] == 'A' && (p[i - 1] == 'K' || p[i - 1] == 'S') && p[i - 2] == 'A')
                return 1;
            break;
        case 'V':  /* raw PRIVATE KEY */
            if (i >= 3 && i + 8 <= n && memcmp(p + i - 3, "PRIVATE KEY", 11) == 0) return 1;
            break;
        case '_':
            if ((det & D_GITHUB) && ((i >= 3 && p[i - 3] == 'g' && p[i - 2] == 'h' && IS(p[i - 1], C_GH))
                                     || ends_with(p, i, "github_pat", 10)))
                return 1;
            if ((det & D_STRIPE) && ends_with(p, i, "k_live", 6)) return 1;
            break;
        case '-':  /* raw -(?<=xox[abpr]-) */
            if (i >= 4 && IS(p[i - 1], C_SLACK) && p[i - 2] == 'x' && p[i - 3] == 'o' && p[i - 4] == 'x') return 1;
            break;
        default:
            break;
        }
        i++;
    }
}

/* scan_in() for a value that is alone in its buffer. */
static inline int
scan(const uint8_t *p, Py_ssize_t n, unsigned det)
{
    return scan_in(p, n, det, n);
}

#endif /* WARDGATE_PREFILTER_CORE_H */
