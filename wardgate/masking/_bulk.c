/*
 * wardgate.masking._bulk: masking work over many values of one buffer in one call (the loops that run per row).
 *
 * Each function takes the values as two lists of offsets into the buffer, starts and ends (a start below 0 is a
 * NULL, skipped). The Python bodies in wardgate/masking/bulk.py are the specification:
 *
 *   partial_many(buf, starts, ends)   partial_many_py: each value becomes maskers.mask_whole(value, PARTIAL, b""),
 *                                     in place (partial masks keep the length); returns how many were masked.
 *   candidates(buf, starts, ends, detectors, skip)
 *                                     candidates_py: the indices of the values (after their first skip bytes) in
 *                                     which _prefilter.may_match(value, detectors) is True.
 *   whole_kinds(buf, starts, ends, detectors, skip)
 *                                     whole_kinds_py, or UNSURE (-2) where unsure: per value, the kind (index in
 *                                     ORDER) of the one built-in match that is the whole value.
 *   partial_kinds(buf, starts, ends, kinds, skip)
 *                                     partial_kinds_py: each value of kind >= 0 masked in place by that
 *                                     detector's partial mask (maskers.PARTIAL).
 *
 * partial_many re-states maskers._whole_kind, partial_email, partial_card, partial_phone and keep_ends over raw
 * bytes (any bytes, valid UTF-8 or not), byte for byte; candidates calls the prefilter's own scan() (shared
 * through _prefilter_core.h, not copied). tests/unit/test_bulk_native.py holds both to the Python by property
 * tests: if maskers.py changes, this file must change with it. whole_kinds re-states the built-in detectors'
 * regexes and validators for whole values (see the comment above whole_kind); partial_kinds reuses the maskers
 * above. tests/unit/test_whole_kinds_native.py holds them to the Python: if detectors.py changes, so must this.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "_prefilter_core.h"

/* --- byte classes of the maskers ------------------------------------------------------------------------------ */

enum {
    M_DIGIT = 1u << 0,  /* 0-9 */
    M_SEP = 1u << 1,    /* " -.()+": what _whole_kind removes before asking "only digits?"; partial_phone keeps */
    M_CARD = 1u << 2,   /* " -": partial_card keeps */
    M_SSN = 1u << 3,    /* "- ": the ssn mask (keep_ends) keeps */
    M_CONT = 1u << 4,   /* 0x80-0xBF: a UTF-8 continuation byte (maskers._CONTINUATION) */
    M_ALPHA = 1u << 5,  /* A-Z a-z: a top-level domain */
    M_XN = 1u << 6,     /* A-Z a-z 0-9 -: the rest of an "xn--" top-level domain */
    M_DOT = 1u << 7,    /* ".": the ipv4 and jwt masks (keep_ends) keep */
    M_SPACE = 1u << 8,  /* " ": the iban mask keeps */
    M_CRLF = 1u << 9,   /* "\r\n": the pem_private_key mask keeps */
};

#define M_IN(b, lo, hi) ((b) >= (lo) && (b) <= (hi))
#define MCLS(b) ( \
    (M_IN(b, '0', '9') ? M_DIGIT | M_XN : 0) \
    | ((b) == ' ' || (b) == '-' || (b) == '.' || (b) == '(' || (b) == ')' || (b) == '+' ? M_SEP : 0) \
    | ((b) == ' ' || (b) == '-' ? M_CARD | M_SSN : 0) \
    | (M_IN(b, 0x80, 0xBF) ? M_CONT : 0) \
    | (M_IN(b, 'A', 'Z') || M_IN(b, 'a', 'z') ? M_ALPHA | M_XN : 0) \
    | ((b) == '-' ? M_XN : 0) \
    | ((b) == '.' ? M_DOT : 0) \
    | ((b) == ' ' ? M_SPACE : 0) \
    | ((b) == '\r' || (b) == '\n' ? M_CRLF : 0))
#define MROW(b) MCLS((b) + 0), MCLS((b) + 1), MCLS((b) + 2), MCLS((b) + 3), MCLS((b) + 4), MCLS((b) + 5), \
    MCLS((b) + 6), MCLS((b) + 7), MCLS((b) + 8), MCLS((b) + 9), MCLS((b) + 10), MCLS((b) + 11), MCLS((b) + 12), \
    MCLS((b) + 13), MCLS((b) + 14), MCLS((b) + 15)

static const uint16_t mcls[256] = {
    MROW(0x00), MROW(0x10), MROW(0x20), MROW(0x30), MROW(0x40), MROW(0x50), MROW(0x60), MROW(0x70),
    MROW(0x80), MROW(0x90), MROW(0xA0), MROW(0xB0), MROW(0xC0), MROW(0xD0), MROW(0xE0), MROW(0xF0),
};

#define HAS(b, flag) (mcls[(uint8_t)(b)] & (flag))

/* --- the maskers, in place over v[0..n) ----------------------------------------------------------------------- */

/* maskers._char_len: the length of the UTF-8 character at v[i] (1 for a stray byte of invalid UTF-8). */
static inline Py_ssize_t
char_len(const uint8_t *v, Py_ssize_t n, Py_ssize_t i)
{
    uint8_t lead = v[i];
    Py_ssize_t len = lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    for (Py_ssize_t k = 1; k < len; k++)
        if (i + k >= n || !HAS(v[i + k], M_CONT)) return 1;
    return len;
}

/* maskers._last_char_start (n >= 1). */
static inline Py_ssize_t
last_char_start(const uint8_t *v, Py_ssize_t n)
{
    Py_ssize_t i = n - 1;
    while (i > 0 && HAS(v[i], M_CONT) && n - i < 4) i--;
    return char_len(v, n, i) == n - i ? i : n - 1;
}

/* v[a..b) through maskers._table(keep): bytes of class keep stay (keep 0: none does), every other becomes '*'. */
static inline void
star(uint8_t *v, Py_ssize_t a, Py_ssize_t b, unsigned keep)
{
    if (keep == 0) {
        if (b > a) memset(v + a, '*', (size_t)(b - a));
        return;
    }
    for (Py_ssize_t k = a; k < b; k++)
        if (!HAS(v[k], keep)) v[k] = '*';
}

/* maskers.keep_ends(v, keep): first and last character kept when there are at least 5 characters to hide (bytes
   neither of class keep nor continuation bytes), the rest through the keep table. */
static void
keep_ends(uint8_t *v, Py_ssize_t n, unsigned keep)
{
    if (n >= 5) {
        Py_ssize_t chars = 0;
        unsigned skip = keep | M_CONT;
        for (Py_ssize_t k = 0; k < n && chars < 5; k++)
            if (!HAS(v[k], skip)) chars++;
        if (chars >= 5) {
            Py_ssize_t head = char_len(v, n, 0);
            Py_ssize_t tail = last_char_start(v, n);
            if (tail >= head) {
                star(v, head, tail, keep);
                return;
            }
        }
    }
    star(v, 0, n, keep);
}

/* maskers._TLD.fullmatch over t[0..len) (the bytes after the dot): [A-Za-z]{2,63} or xn--[A-Za-z0-9-]{2,59}. */
static inline int
is_tld(const uint8_t *t, Py_ssize_t len)
{
    if (len < 2 || len > 63) return 0;
    Py_ssize_t k = 0;
    while (k < len && HAS(t[k], M_ALPHA)) k++;
    if (k == len) return 1;
    if (len < 6 || memcmp(t, "xn--", 4) != 0) return 0;
    for (k = 4; k < len; k++)
        if (!HAS(t[k], M_XN)) return 0;
    return 1;
}

/* maskers.partial_email, for a value holding an '@' (the last one at v[at]). */
static void
partial_email(uint8_t *v, Py_ssize_t n, Py_ssize_t at)
{
    if (at == 0) {
        keep_ends(v, n, 0);
        return;
    }
    Py_ssize_t dot = n - 1;
    while (dot > at && v[dot] != '.') dot--;
    if (dot == at || !is_tld(v + dot + 1, n - dot - 1)) dot = n;
    Py_ssize_t head = char_len(v, n, 0);  /* <= at: '@' is no continuation byte */
    star(v, head, at, 0);
    star(v, at + 1, dot, 0);
}

/* maskers._keep_last_digits(v, last, table) for a value of digits and " -.()+" only: the separators of class
   keep stay, so do the last `last` digits, every other byte becomes '*'. */
static inline void
keep_last_digits(uint8_t *v, Py_ssize_t n, int last, unsigned keep)
{
    for (Py_ssize_t k = n - 1; k >= 0; k--) {
        if (HAS(v[k], M_DIGIT)) {
            if (last > 0) last--;
            else v[k] = '*';
        }
        else if (!HAS(v[k], keep)) {
            v[k] = '*';
        }
    }
}

/* maskers.mask_whole(v, Style.PARTIAL, b""): the shape _whole_kind sees, then its partial mask. */
static void
mask_partial(uint8_t *v, Py_ssize_t n)
{
    const uint8_t *at = n > 0 ? memchr(v, '@', (size_t)n) : NULL;
    if (at != NULL) {
        Py_ssize_t last = n - 1;
        while (v[last] != '@') last--;
        partial_email(v, n, last);
        return;
    }
    Py_ssize_t digits = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        uint8_t c = mcls[v[k]];
        if (c & M_DIGIT) digits++;
        else if (!(c & M_SEP)) goto other;
    }
    if (digits == 0) goto other;  /* b"".isdigit() is False */
    if (v[0] == '+' || v[0] == '(') goto phone;
    if (digits >= 13 && digits <= 19) {
        keep_last_digits(v, n, 4, M_CARD);
        return;
    }
    if (digits == 9 && n == 11) {
        keep_ends(v, n, M_SSN);
        return;
    }
    if (digits >= 10 && digits <= 12 && digits < n) goto phone;
other:
    keep_ends(v, n, 0);
    return;
phone:
    keep_last_digits(v, n, 2, M_SEP);
}

/* --- arguments ------------------------------------------------------------------------------------------------ */

/* starts and ends as two arrays of the same length (lists and tuples are read in place). On success the caller
   DECREFs *s_seq and *e_seq. */
static int
offsets(PyObject *starts, PyObject *ends, const char *fn, PyObject **s_seq, PyObject **e_seq, Py_ssize_t *m)
{
    *s_seq = PySequence_Fast(starts, "starts must be a sequence of int");
    if (*s_seq == NULL) return -1;
    *e_seq = PySequence_Fast(ends, "ends must be a sequence of int");
    if (*e_seq == NULL) {
        Py_DECREF(*s_seq);
        return -1;
    }
    *m = PySequence_Fast_GET_SIZE(*s_seq);
    if (PySequence_Fast_GET_SIZE(*e_seq) != *m) {
        PyErr_Format(PyExc_ValueError, "%s(): starts and ends differ in length (%zd and %zd)", fn, *m,
                     PySequence_Fast_GET_SIZE(*e_seq));
        Py_DECREF(*s_seq);
        Py_DECREF(*e_seq);
        return -1;
    }
    return 0;
}

/* An offset as Py_ssize_t (-1 with an exception set when it is no int). An int beyond Py_ssize_t reads as -2
   when negative (a NULL as a start, rejected as an end) and as PY_SSIZE_T_MAX when positive (rejected). */
static inline Py_ssize_t
offset(PyObject *o)
{
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "offsets must be int, not %.100s", Py_TYPE(o)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow < 0 || v < -PY_SSIZE_T_MAX) return -2;
    if (overflow > 0 || v > PY_SSIZE_T_MAX) return PY_SSIZE_T_MAX;
    return (Py_ssize_t)v;
}

/* Reads value i's offsets into *s and *e; 0 when it is NULL (start < 0), 1 when it is a value, -1 on error
   (set). A value must lie within the n bytes of the buffer: 0 <= s <= e <= n. */
static inline int
value_at(PyObject **ss, PyObject **es, Py_ssize_t i, Py_ssize_t n, const char *fn, Py_ssize_t *s, Py_ssize_t *e)
{
    *s = offset(ss[i]);
    if (*s == -1 && PyErr_Occurred()) return -1;
    if (*s < 0) return 0;
    *e = offset(es[i]);
    if (*e == -1 && PyErr_Occurred()) return -1;
    if (*s > *e || *e > n) {
        PyErr_Format(PyExc_ValueError, "%s(): value %zd at [%zd:%zd] is not within the buffer of %zd bytes", fn, i,
                     *s, *e, n);
        return -1;
    }
    return 1;
}

/* --- partial_many --------------------------------------------------------------------------------------------- */

PyDoc_STRVAR(partial_many_doc,
"partial_many(buf, starts, ends, /)\n--\n\n"
"bulk.partial_many_py in C: each value buf[starts[i]:ends[i]] (starts[i] < 0: NULL, skipped) becomes\n"
"maskers.mask_whole(value, Style.PARTIAL, b\"\"), in place in buf (a bytearray or any writable buffer); returns\n"
"how many values were masked. Raises ValueError, before writing anything, when a value is not within buf\n"
"or the lists differ in length.");

static PyObject *
partial_many(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "partial_many() takes exactly 3 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) != 0) return NULL;
    PyObject *s_seq, *e_seq;
    Py_ssize_t m;
    if (offsets(args[1], args[2], "partial_many", &s_seq, &e_seq, &m) != 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    PyObject **ss = PySequence_Fast_ITEMS(s_seq), **es = PySequence_Fast_ITEMS(e_seq);
    uint8_t *p = (uint8_t *)view.buf;
    Py_ssize_t n = view.len, s = 0, e = 0, done = 0;
    PyObject *result = NULL;
    /* Every offset is checked before the first byte is written: a bad list changes nothing. */
    for (Py_ssize_t i = 0; i < m; i++)
        if (value_at(ss, es, i, n, "partial_many", &s, &e) < 0) goto out;
    for (Py_ssize_t i = 0; i < m; i++) {
        if (value_at(ss, es, i, n, "partial_many", &s, &e) > 0) {
            mask_partial(p + s, e - s);
            done++;
        }
    }
    result = PyLong_FromSsize_t(done);
out:
    Py_DECREF(s_seq);
    Py_DECREF(e_seq);
    PyBuffer_Release(&view);
    return result;
}

/* --- candidates ----------------------------------------------------------------------------------------------- */

/* The detectors and skip arguments (args[3], args[4]) of candidates and whole_kinds. */
static int
detectors_and_skip(PyObject *const *args, const char *fn, unsigned *det, Py_ssize_t *skip)
{
    if (detector_bits(args[3], fn, 0, det) != 0) return -1;
    if (!PyLong_Check(args[4])) {
        PyErr_Format(PyExc_TypeError, "%s() skip must be int", fn);
        return -1;
    }
    *skip = PyLong_AsSsize_t(args[4]);
    if (*skip == -1 && PyErr_Occurred()) return -1;
    if (*skip < 0) {
        PyErr_Format(PyExc_ValueError, "%s() skip must not be negative", fn);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(candidates_doc,
"candidates(buf, starts, ends, detectors, skip, /)\n--\n\n"
"bulk.candidates_py in C: the indices i, ascending, of the values (starts[i] >= 0) for which\n"
"_prefilter.may_match(buf[starts[i] + skip : ends[i]], detectors) is True (a value shorter than skip is empty).\n"
"Raises ValueError when a value is not within buf, the lists differ in length, skip < 0 or detectors has a\n"
"bit beyond the built-in detectors.");

static PyObject *
candidates(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "candidates() takes exactly 5 arguments (%zd given)", nargs);
        return NULL;
    }
    unsigned det;
    Py_ssize_t skip;
    if (detectors_and_skip(args, "candidates", &det, &skip) != 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) != 0) return NULL;
    PyObject *s_seq, *e_seq;
    Py_ssize_t m;
    if (offsets(args[1], args[2], "candidates", &s_seq, &e_seq, &m) != 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    PyObject **ss = PySequence_Fast_ITEMS(s_seq), **es = PySequence_Fast_ITEMS(e_seq);
    const uint8_t *p = (const uint8_t *)view.buf;
    Py_ssize_t n = view.len, s = 0, e = 0;
    PyObject *result = PyList_New(0);
    if (result == NULL) goto out;
    for (Py_ssize_t i = 0; i < m; i++) {
        int r = value_at(ss, es, i, n, "candidates", &s, &e);
        if (r < 0) goto fail;
        if (r == 0 || det == 0 || e - s <= skip) continue;
        if (scan_in(p + s + skip, e - s - skip, det, n - s - skip)) {
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL) goto fail;
            int err = PyList_Append(result, index);
            Py_DECREF(index);
            if (err != 0) goto fail;
        }
    }
    goto out;
fail:
    Py_CLEAR(result);
out:
    Py_DECREF(s_seq);
    Py_DECREF(e_seq);
    PyBuffer_Release(&view);
    return result;
}

/* --- whole_kinds: a value that is one sensitive value, recognised without the scanner ------------------------ */

/*
 * whole_kind(v, n, det) answers either what bulk.whole_kinds_py answers for v (k: the Python scanner over the
 * detectors of det finds exactly one match, the whole value, of detector ORDER[k]) or UNSURE. It recognises the
 * common shapes exactly (e-mail address, card, SSN, phone, IPv4) and says UNSURE for anything it does not prove.
 *
 * Why a shape alone decides (the reasoning the property tests hold it to). The scanner tries, from the left, each
 * position right after a byte that is no letter, digit or _ (the value's start counts: the scanner puts a NUL
 * before it), and there the branches in the scanner's order; the first branch that matches there and validates
 * wins, and after a match that ends the value nothing more is found. So:
 *
 *   - A card, SSN, phone or IPv4 value is recognised at the start of the value. The shapes are such that no
 *     other built-in branch can match at the start of a value of that shape at all: a card opens with four
 *     digits (SSN and NANP need a separator after three, IPv4 a dot within the first four bytes, NANP_ONE a 1,
 *     which no card starts with), an SSN has two digits between separators (NANP needs three), IPv4 octets are
 *     at most three digits (NANP and NANP_ONE end in four), only E.164 starts with "+" and only NANP_PAREN with
 *     "(", and none of these values holds a letter, ":" or "@". So the answer does not depend on the order of
 *     the detectors in the scanner (the gateway builds its scanner in the order of the policy's rules).
 *   - An e-mail address is found from its @, after every position of its local part has been tried. It is the
 *     answer when: the local part is the whole run before the @ (no leading punctuation, at most 128 bytes, no
 *     escape); the domain matches EMAIL_DOMAIN to the end; no trigger of an earlier detector (PEM ... Slack) is
 *     in the value (the prefilter's scan(): those could match anywhere); no other branch can match after a
 *     punctuation byte of the local part (they all start with a digit, "+digit", "(" or two capitals and two
 *     digits, and a digit run followed by a letter, _ or the @ ends no match: every number branch refuses a
 *     word byte or an @ after it); and no other branch can match right after the @ (a detector before e-mail
 *     in the scanner's order would win there): the domain does not start with two capitals and two digits or
 *     with digits followed by "-", by "." and a digit, or (13 or more) by ".".
 *
 * UTF-8 in e-mail addresses (RFC 6531 local parts, IDN domains): the local-part run and the domain labels take
 * any byte 0x80-0xFF as the regexes do (_LOCAL_RUN, _LABEL_CHAR), valid UTF-8 or not; the top-level domain must
 * be ASCII (is_tld), so the value ends on an ASCII byte. A byte >= 0x80 is no word byte, so it is a boundary of
 * the scanner like the local part's punctuation: a branch may start right after it, and a number the
 * branches match may end right before it (their lookaheads refuse only ASCII word bytes, "@" and ".digit"). So
 * in the local part it counts as punctuation for both checks (a digit run after it, a digit run before it), and
 * right after the @ a digit run followed by one may be a number (number_may_start). A local part may start
 * with one (the scanner takes it: no punctuation to trim, no escape before it).
 *
 * Everything else is UNSURE: any other kind with a byte outside printable ASCII, a backslash (JSON escapes)
 * anywhere, a byte outside the e-mail classes (space, control bytes, ! # $ ...) in an address.
 */

#define UNSURE (-2)
/* Kind numbers: the bit numbers of the detectors (ORDER). */
enum { K_EMAIL = 6, K_CARD = 8, K_SSN = 9, K_PHONE = 10, K_IPV4 = 12 };
/* The detectors before e-mail in ORDER, found by their literal triggers. */
#define D_EARLY (D_PEM | D_JWT | D_AWS | D_GITHUB | D_STRIPE | D_SLACK)

#define IS_DIGIT(b) ((unsigned)((b) - '0') <= 9u)
#define IS_UPPER(b) ((unsigned)((b) - 'A') <= 25u)
#define IS_ALNUM(b) (IS_DIGIT(b) || IS_UPPER(b) || (unsigned)((b) - 'a') <= 25u)
/* The bytes of a local part that are no word bytes: the scanner's boundaries inside it, and what _local_start
   trims from its start. */
#define IS_LOCAL_PUNCT(b) ((b) == '.' || (b) == '%' || (b) == '+' || (b) == '\'' || (b) == '-')
/* A byte of UTF-8 (or of invalid UTF-8): in local parts and domain labels, and a boundary of the scanner. */
#define IS_HIGH(b) ((b) >= 0x80)
/* The bytes of a local part after which a branch may start, and before which a number match may end. */
#define IS_LOCAL_BREAK(b) (IS_LOCAL_PUNCT(b) || IS_HIGH(b))
/* _LABEL_CHAR: [A-Za-z0-9\x80-\xff]. */
#define IS_LABEL(b) (IS_ALNUM(b) || IS_HIGH(b))

/* The digit run from v[i]: its end. */
static inline Py_ssize_t
digit_run(const uint8_t *v, Py_ssize_t n, Py_ssize_t i)
{
    while (i < n && IS_DIGIT(v[i])) i++;
    return i;
}

/* detectors.luhn over n ASCII digits. */
static inline int
luhn_ok(const uint8_t *d, Py_ssize_t n)
{
    static const uint8_t doubled[10] = {0, 2, 4, 6, 8, 1, 3, 5, 7, 9};
    unsigned sum = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        unsigned x = d[n - 1 - k] - '0';
        sum += (k & 1) ? doubled[x] : x;
    }
    return sum % 10 == 0;
}

/* detectors._card_network over n (>= 4) ASCII digits. */
static inline int
card_network(const uint8_t *d, Py_ssize_t n)
{
    int d0 = d[0] - '0', p2 = d0 * 10 + (d[1] - '0'), p3 = p2 * 10 + (d[2] - '0'), p4 = p3 * 10 + (d[3] - '0');
    if (d0 == 4) return n == 16 || n == 19;  /* Visa */
    if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return n == 16;  /* Mastercard */
    if (p2 == 34 || p2 == 37) return n == 15;  /* American Express */
    if ((p4 >= 2200 && p4 <= 2204) || (p4 >= 3528 && p4 <= 3589) || d0 == 6 || p2 == 50 || (p2 >= 56 && p2 <= 58))
        return n >= 16 && n <= 19;
    if (p2 == 36 || p2 == 38 || p2 == 39 || (p3 >= 300 && p3 <= 305)) return n >= 14 && n <= 19;  /* Diners */
    return 0;
}

/* A whole value that CARD matches to its end and _card accepts whole: [2-6] and 12-18 digits, or a group of four
   ([2-6]...) and 2-4 groups of 3-6 digits after one kind of separator (" " or "-"); network, length, Luhn. */
static int
is_card(const uint8_t *v, Py_ssize_t n)
{
    uint8_t d[32];
    if (n < 13 || n > 4 + 4 * 7 || v[0] < '2' || v[0] > '6') return 0;
    Py_ssize_t i = digit_run(v, n, 0), nd = 0;
    if (i == n) {
        if (n > 19) return 0;
        return card_network(v, n) && luhn_ok(v, n);
    }
    if (i != 4 || (v[4] != ' ' && v[4] != '-')) return 0;
    memcpy(d, v, 4);
    nd = 4;
    uint8_t sep = v[4];
    int groups = 0;
    while (i < n) {
        if (v[i] != sep || groups == 4) return 0;
        Py_ssize_t e = digit_run(v, n, i + 1);
        if (e - i - 1 < 3 || e - i - 1 > 6) return 0;
        memcpy(d + nd, v + i + 1, (size_t)(e - i - 1));
        nd += e - i - 1;
        groups++;
        i = e;
    }
    if (groups < 2 || nd > 19) return 0;
    return card_network(d, nd) && luhn_ok(d, nd);
}

/* A whole value SSN matches and _ssn accepts: [0-8]99-99-9999 or with spaces; area not 000 or 666, group not 00,
   serial not 0000. */
static int
is_ssn(const uint8_t *v, Py_ssize_t n)
{
    if (n != 11 || v[0] > '8' || digit_run(v, n, 0) != 3 || (v[3] != '-' && v[3] != ' ') || v[6] != v[3]
        || digit_run(v, n, 4) != 6 || digit_run(v, n, 7) != 11)
        return 0;
    if (memcmp(v, "000", 3) == 0 || memcmp(v, "666", 3) == 0 || memcmp(v + 4, "00", 2) == 0
        || memcmp(v + 7, "0000", 4) == 0)
        return 0;
    return 1;
}

/* Does v[0..n) have the shape pat (same length; 'd' a digit, 'N' 2-9, any other byte itself)? */
static inline int
shape(const uint8_t *v, Py_ssize_t n, const char *pat)
{
    for (Py_ssize_t k = 0; k < n; k++) {
        char c = pat[k];
        if (c == '\0') return 0;
        if (c == 'd' ? !IS_DIGIT(v[k]) : c == 'N' ? v[k] < '2' || v[k] > '9' : v[k] != (uint8_t)c) return 0;
    }
    return pat[n] == '\0';
}

/* The whole values of NANP, NANP_PAREN and NANP_ONE ("ddd" of an area code or exchange: the regexes' [2-9]). */
static const char *const NANP_SHAPES[] = {
    "Ndd-ddd-dddd", "Ndd.ddd.dddd",
    "(Ndd)ddd-dddd", "(Ndd)ddd.dddd", "(Ndd) ddd-dddd", "(Ndd) ddd.dddd",
    "1-Ndd-ddd-dddd", "1.Ndd.ddd.dddd", "1(Ndd)ddd-dddd", "1 (Ndd)ddd-dddd", "1(Ndd) ddd-dddd", "1 (Ndd) ddd-dddd",
    "1 Ndd-ddd-dddd",
};

#define IS_E164_SEP(b) ((b) == ' ' || (b) == '.' || (b) == '-')

/* A whole value E164 matches to its end (its possessive repeats take one parse) and _phone accepts: 8-15 digits
   and not exactly one dot. */
static int
is_e164(const uint8_t *v, Py_ssize_t n)
{
    if (n < 2 || v[0] != '+' || v[1] < '1' || v[1] > '9') return 0;
    Py_ssize_t i = digit_run(v, n, 2);
    while (i < n) {
        /* [ .-]?\([0-9]{1,4}\)[ .-]?[0-9]++ */
        Py_ssize_t j = i + (IS_E164_SEP(v[i]) ? 1 : 0);
        if (j < n && v[j] == '(') {
            Py_ssize_t k = digit_run(v, n, j + 1);
            if (k - j - 1 >= 1 && k - j - 1 <= 4 && k < n && v[k] == ')') {
                k++;
                if (k + 1 < n && IS_E164_SEP(v[k]) && IS_DIGIT(v[k + 1])) k++;
                if (k < n && IS_DIGIT(v[k])) {
                    i = digit_run(v, n, k);
                    continue;
                }
            }
        }
        /* [ .-][0-9]++ */
        if (IS_E164_SEP(v[i]) && i + 1 < n && IS_DIGIT(v[i + 1])) {
            i = digit_run(v, n, i + 1);
            continue;
        }
        return 0;  /* the match ends before the value does */
    }
    int nd = 0, dots = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        nd += IS_DIGIT(v[k]);
        dots += v[k] == '.';
    }
    return nd >= 8 && nd <= 15 && dots != 1;
}

static int
is_phone(const uint8_t *v, Py_ssize_t n)
{
    if (v[0] == '+') return is_e164(v, n);
    if (n < 12 || n > 16) return 0;
    for (size_t k = 0; k < sizeof NANP_SHAPES / sizeof NANP_SHAPES[0]; k++)
        if (shape(v, n, NANP_SHAPES[k])) return 1;
    return 0;
}

/* A whole value IPV4 matches and _ipv4 accepts: four octets of 1-3 digits, 0-255, no leading zero. */
static int
is_ipv4(const uint8_t *v, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    for (int octet = 0; octet < 4; octet++) {
        if (octet > 0) {
            if (i >= n || v[i] != '.') return 0;
            i++;
        }
        Py_ssize_t e = digit_run(v, n, i), len = e - i;
        if (len < 1 || len > 3 || (len > 1 && v[i] == '0')) return 0;
        int x = 0;
        for (Py_ssize_t k = i; k < e; k++) x = x * 10 + (v[k] - '0');
        if (x > 255) return 0;
        i = e;
    }
    return i == n;
}

/* Could a number branch (card, SSN, phone, IPv4) match from d[0], where a run of k >= 1 digits starts, in a
   domain (letters, digits, bytes >= 0x80, "-" and "." only)? A run followed by a letter ends no number; one
   followed by a byte >= 0x80 may (the branches' lookaheads let it through: x@4111111111111111\xc3\xa4.com). */
static inline int
number_may_start(const uint8_t *d, Py_ssize_t dn, Py_ssize_t k)
{
    if (k >= dn) return 1;
    if (d[k] == '-' || IS_HIGH(d[k])) return 1;
    if (d[k] == '.') return k >= 13 || (k + 1 < dn && IS_DIGIT(d[k + 1]));
    return 0;
}

/* Is v[0..n), whose only @ is v[at], an e-mail address the scanner finds whole and alone (see above)? */
static int
is_email(const uint8_t *v, Py_ssize_t n, Py_ssize_t at, unsigned det)
{
    if (at < 1 || at > 128 || IS_LOCAL_PUNCT(v[0])) return 0;
    /* the local part: the whole run before the @; no other branch may start after a boundary in it (its
       punctuation and its bytes >= 0x80) */
    for (Py_ssize_t j = 0; j < at; j++) {
        uint8_t b = v[j];
        if (!(IS_ALNUM(b) || b == '_' || IS_LOCAL_BREAK(b))) return 0;
        if (j > 0 && !IS_LOCAL_BREAK(v[j - 1])) continue;
        if (IS_DIGIT(b)) {
            Py_ssize_t r = digit_run(v, at, j);
            if (r < at && IS_LOCAL_BREAK(v[r])) return 0;
        }
        else if (IS_UPPER(b) && j + 3 < at && IS_UPPER(v[j + 1]) && IS_DIGIT(v[j + 2]) && IS_DIGIT(v[j + 3])) {
            return 0;  /* an IBAN could start here */
        }
    }
    /* the domain: labels of 1-63 bytes (letters, digits, bytes >= 0x80 and inner hyphens), then an ASCII
       top-level domain, to the end */
    const uint8_t *d = v + at + 1;
    Py_ssize_t dn = n - at - 1, ls = 0, labels = 0;
    for (;;) {
        Py_ssize_t le = ls;
        while (le < dn && d[le] != '.') le++;
        if (le == dn) break;  /* d[ls..dn) is the last label */
        Py_ssize_t len = le - ls;
        if (len < 1 || len > 63 || !IS_LABEL(d[ls]) || !IS_LABEL(d[le - 1])) return 0;
        for (Py_ssize_t k = ls + 1; k < le - 1; k++)
            if (!IS_LABEL(d[k]) && d[k] != '-') return 0;
        labels++;
        ls = le + 1;
    }
    if (labels == 0 || !is_tld(d + ls, dn - ls)) return 0;
    if (IS_DIGIT(d[0]) && d[1] == 'x' && d[2] == '.') return 0;  /* (?!(?<=[0-9])x\.): icon@2x.png */
    /* whatever the order of the detectors: no other branch right after the @ */
    if (IS_DIGIT(d[0]) && number_may_start(d, dn, digit_run(d, dn, 0))) return 0;
    if (dn >= 4 && IS_UPPER(d[0]) && IS_UPPER(d[1]) && IS_DIGIT(d[2]) && IS_DIGIT(d[3])) return 0;
    /* no token, key or JWT anywhere */
    if ((det & D_EARLY) && scan(v, n, det & D_EARLY)) return 0;
    return 1;
}

static int
whole_kind(const uint8_t *v, Py_ssize_t n, unsigned det)
{
    if (n == 0) return UNSURE;
    const uint8_t *at = memchr(v, '@', (size_t)n);
    if (at != NULL)
        return (det & D_EMAIL) && memchr(at + 1, '@', (size_t)(v + n - at - 1)) == NULL
               && is_email(v, n, at - v, det) ? K_EMAIL : UNSURE;
    uint8_t c = v[0];
    if (c == '+' || c == '(') return (det & D_PHONE) && is_phone(v, n) ? K_PHONE : UNSURE;
    if (!IS_DIGIT(c)) return UNSURE;
    if ((det & D_CARD) && is_card(v, n)) return K_CARD;
    if ((det & D_SSN) && is_ssn(v, n)) return K_SSN;
    if ((det & D_PHONE) && is_phone(v, n)) return K_PHONE;
    if ((det & D_IPV4) && is_ipv4(v, n)) return K_IPV4;
    return UNSURE;
}

PyDoc_STRVAR(whole_kinds_doc,
"whole_kinds(buf, starts, ends, detectors, skip, /)\n--\n\n"
"bulk.whole_kinds_py in C, or UNSURE (-2) where it is not sure: for each value buf[starts[i] + skip : ends[i]]\n"
"(starts[i] < 0: NULL, -2), k when the scanner over the built-in detectors whose bits are set in detectors finds\n"
"exactly one match, the whole value, of detector ORDER[k]; -2 otherwise or when unsure. Recognises e-mail\n"
"addresses (ASCII or UTF-8), card, SSN and phone numbers and IPv4 addresses of printable ASCII alone in their\n"
"value. Raises ValueError when a value is not within buf, the lists differ in length, skip < 0 or detectors\n"
"has a bit beyond the built-in detectors.");

static PyObject *
whole_kinds(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "whole_kinds() takes exactly 5 arguments (%zd given)", nargs);
        return NULL;
    }
    unsigned det;
    Py_ssize_t skip;
    if (detectors_and_skip(args, "whole_kinds", &det, &skip) != 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) != 0) return NULL;
    PyObject *s_seq, *e_seq;
    Py_ssize_t m;
    if (offsets(args[1], args[2], "whole_kinds", &s_seq, &e_seq, &m) != 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    PyObject **ss = PySequence_Fast_ITEMS(s_seq), **es = PySequence_Fast_ITEMS(e_seq);
    const uint8_t *p = (const uint8_t *)view.buf;
    Py_ssize_t n = view.len, s = 0, e = 0;
    PyObject *result = PyList_New(m);
    if (result == NULL) goto out;
    for (Py_ssize_t i = 0; i < m; i++) {
        int r = value_at(ss, es, i, n, "whole_kinds", &s, &e);
        if (r < 0) {
            Py_CLEAR(result);
            goto out;
        }
        int kind = r == 0 || e - s <= skip ? UNSURE : whole_kind(p + s + skip, e - s - skip, det);
        PyObject *k = PyLong_FromLong(kind);  /* a small int: no allocation, no failure */
        if (k == NULL) {
            Py_CLEAR(result);
            goto out;
        }
        PyList_SET_ITEM(result, i, k);
    }
out:
    Py_DECREF(s_seq);
    Py_DECREF(e_seq);
    PyBuffer_Release(&view);
    return result;
}

/* --- partial_kinds -------------------------------------------------------------------------------------------- */

/* maskers.PARTIAL.get(ORDER[kind], keep_ends)(v), in place. */
static void
mask_kind(uint8_t *v, Py_ssize_t n, int kind)
{
    switch (kind) {
    case 0:  /* pem_private_key */
        keep_ends(v, n, M_CRLF);
        return;
    case 1:  /* jwt */
    case K_IPV4:
        keep_ends(v, n, M_DOT);
        return;
    case K_EMAIL: {
        Py_ssize_t at = n - 1;
        while (at >= 0 && v[at] != '@') at--;
        if (at < 0) keep_ends(v, n, 0);  /* partial_email of a value without @: keep_ends */
        else partial_email(v, n, at);
        return;
    }
    case 7:  /* iban */
        keep_ends(v, n, M_SPACE);
        return;
    case K_CARD:
        keep_last_digits(v, n, 4, M_CARD);
        return;
    case K_SSN:
        keep_ends(v, n, M_SSN);
        return;
    case K_PHONE:
        keep_last_digits(v, n, 2, M_SEP);
        return;
    default:  /* aws_access_key, github_token, stripe_key, slack_token, ipv6 */
        keep_ends(v, n, 0);
        return;
    }
}

/* kinds[i] as an int: below 0 for "leave alone" (-1), 0 to D_COUNT - 1 for a detector; -2 with an exception set
   when it is no int or beyond the built-in detectors. */
static inline int
kind_at(PyObject *o, Py_ssize_t i)
{
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "kinds must be int, not %.100s", Py_TYPE(o)->tp_name);
        return -2;
    }
    int overflow = 0;
    long k = PyLong_AsLongAndOverflow(o, &overflow);
    if (k == -1 && PyErr_Occurred()) return -2;
    if (overflow < 0 || (!overflow && k < 0)) return -1;
    if (overflow > 0 || k >= D_COUNT) {
        PyErr_Format(PyExc_ValueError, "partial_kinds(): kind %zd is not a built-in detector (0 to %d, or below 0 "
                     "for none)", i, D_COUNT - 1);
        return -2;
    }
    return (int)k;
}

PyDoc_STRVAR(partial_kinds_doc,
"partial_kinds(buf, starts, ends, kinds, skip, /)\n--\n\n"
"bulk.partial_kinds_py in C: each value buf[starts[i] + skip : ends[i]] (starts[i] >= 0) of kinds[i] >= 0\n"
"becomes maskers.PARTIAL.get(ORDER[kinds[i]], keep_ends)(value), in place in buf (a bytearray or any writable\n"
"buffer); a value shorter than skip is left alone. Raises ValueError, before writing anything, when a value is\n"
"not within buf, the lists differ in length, skip < 0 or a kind is beyond the built-in detectors.");

static PyObject *
partial_kinds(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "partial_kinds() takes exactly 5 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!PyLong_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "partial_kinds() skip must be int");
        return NULL;
    }
    Py_ssize_t skip = PyLong_AsSsize_t(args[4]);
    if (skip == -1 && PyErr_Occurred()) return NULL;
    if (skip < 0) {
        PyErr_SetString(PyExc_ValueError, "partial_kinds() skip must not be negative");
        return NULL;
    }
    PyObject *k_seq = PySequence_Fast(args[3], "kinds must be a sequence of int");
    if (k_seq == NULL) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) != 0) {
        Py_DECREF(k_seq);
        return NULL;
    }
    PyObject *s_seq, *e_seq;
    Py_ssize_t m;
    if (offsets(args[1], args[2], "partial_kinds", &s_seq, &e_seq, &m) != 0) {
        Py_DECREF(k_seq);
        PyBuffer_Release(&view);
        return NULL;
    }
    PyObject **ss = PySequence_Fast_ITEMS(s_seq), **es = PySequence_Fast_ITEMS(e_seq);
    PyObject **ks = PySequence_Fast_ITEMS(k_seq);
    uint8_t *p = (uint8_t *)view.buf;
    Py_ssize_t n = view.len, s = 0, e = 0;
    PyObject *result = NULL;
    if (PySequence_Fast_GET_SIZE(k_seq) != m) {
        PyErr_Format(PyExc_ValueError, "partial_kinds(): starts and kinds differ in length (%zd and %zd)", m,
                     PySequence_Fast_GET_SIZE(k_seq));
        goto out;
    }
    /* Every offset and kind is checked before the first byte is written: a bad list changes nothing. */
    for (Py_ssize_t i = 0; i < m; i++) {
        if (value_at(ss, es, i, n, "partial_kinds", &s, &e) < 0) goto out;
        if (kind_at(ks[i], i) == -2) goto out;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        int kind = kind_at(ks[i], i);
        if (value_at(ss, es, i, n, "partial_kinds", &s, &e) > 0 && kind >= 0 && e - s > skip)
            mask_kind(p + s + skip, e - s - skip, kind);
    }
    result = Py_NewRef(Py_None);
out:
    Py_DECREF(s_seq);
    Py_DECREF(e_seq);
    Py_DECREF(k_seq);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"partial_many", (PyCFunction)(void (*)(void))partial_many, METH_FASTCALL, partial_many_doc},
    {"candidates", (PyCFunction)(void (*)(void))candidates, METH_FASTCALL, candidates_doc},
    {"whole_kinds", (PyCFunction)(void (*)(void))whole_kinds, METH_FASTCALL, whole_kinds_doc},
    {"partial_kinds", (PyCFunction)(void (*)(void))partial_kinds, METH_FASTCALL, partial_kinds_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wardgate.masking._bulk",
    .m_doc = "Masking over many values of one buffer in one call: wardgate.masking.bulk's loops, in C.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__bulk(void)
{
    return PyModuleDef_Init(&module_def);
}
