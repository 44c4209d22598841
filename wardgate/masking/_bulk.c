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
 *
 * partial_many re-states maskers._whole_kind, partial_email, partial_card, partial_phone and keep_ends over raw
 * bytes (any bytes, valid UTF-8 or not), byte for byte; candidates calls the prefilter's own scan() (shared
 * through _prefilter_core.h, not copied). tests/unit/test_bulk_native.py holds both to the Python by property
 * tests: if maskers.py changes, this file must change with it.
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
};

#define M_IN(b, lo, hi) ((b) >= (lo) && (b) <= (hi))
#define MCLS(b) ( \
    (M_IN(b, '0', '9') ? M_DIGIT | M_XN : 0) \
    | ((b) == ' ' || (b) == '-' || (b) == '.' || (b) == '(' || (b) == ')' || (b) == '+' ? M_SEP : 0) \
    | ((b) == ' ' || (b) == '-' ? M_CARD | M_SSN : 0) \
    | (M_IN(b, 0x80, 0xBF) ? M_CONT : 0) \
    | (M_IN(b, 'A', 'Z') || M_IN(b, 'a', 'z') ? M_ALPHA | M_XN : 0) \
    | ((b) == '-' ? M_XN : 0))
#define MROW(b) MCLS((b) + 0), MCLS((b) + 1), MCLS((b) + 2), MCLS((b) + 3), MCLS((b) + 4), MCLS((b) + 5), \
    MCLS((b) + 6), MCLS((b) + 7), MCLS((b) + 8), MCLS((b) + 9), MCLS((b) + 10), MCLS((b) + 11), MCLS((b) + 12), \
    MCLS((b) + 13), MCLS((b) + 14), MCLS((b) + 15)

static const uint8_t mcls[256] = {
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
    if (!PyLong_Check(args[3]) || !PyLong_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "candidates() detectors and skip must be int");
        return NULL;
    }
    int overflow = 0;
    long det = PyLong_AsLongAndOverflow(args[3], &overflow);
    if (det == -1 && PyErr_Occurred()) return NULL;
    if (overflow || det < 0 || det > (long)D_ALL) {
        PyErr_Format(PyExc_ValueError, "candidates() detectors must be a bit set of the %d built-in detectors "
                     "(0 to %d)", D_COUNT, (int)D_ALL);
        return NULL;
    }
    Py_ssize_t skip = PyLong_AsSsize_t(args[4]);
    if (skip == -1 && PyErr_Occurred()) return NULL;
    if (skip < 0) {
        PyErr_SetString(PyExc_ValueError, "candidates() skip must not be negative");
        return NULL;
    }
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
        if (scan(p + s + skip, e - s - skip, (unsigned)det)) {
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

static PyMethodDef methods[] = {
    {"partial_many", (PyCFunction)(void (*)(void))partial_many, METH_FASTCALL, partial_many_doc},
    {"candidates", (PyCFunction)(void (*)(void))candidates, METH_FASTCALL, candidates_doc},
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
