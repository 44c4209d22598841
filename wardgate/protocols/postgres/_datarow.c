/*
 * wardgate.protocols.postgres._datarow: the walk over a run of DataRow messages, in one call.
 *
 * walk(buf, columns) returns what wardgate.protocols.postgres.decode.data_row_walk returns (its specification):
 * the start and end of every row, and the start and end of the chosen values of every row (-1, -1 for NULL). It
 * raises ValueError for any run that data_row_walk rejects with ProtocolViolation; decode.walk_rows turns that
 * into the same ProtocolViolation.
 *
 * A DataRow is 'D', an int32 length that counts itself, an int16 value count, then per value an int32 length
 * (-1: NULL) and that many bytes; the run must be whole rows, back to back, filling the buffer exactly.
 *
 * Two passes: the first checks every row and counts them (nothing allocated), the second fills two lists made
 * at their final size. The second reads each row only up to its last chosen column. Making the int objects is
 * most of the cost (about 8 ns each, as in list(range(...))), so equal offsets share one: a row's start and the
 * previous row's end, and the end of a row's last value and the row's end. Equality with the reference
 * is the contract; tests/unit/test_datarow_native.py checks it by property tests.
 *
 * may_match(buf, columns, skips, detectors) answers decode.data_rows_may_match: does any chosen value of any row
 * hold a trigger of the masking prefilter? It is the question result masking asks of every result before it
 * looks at a value, so that it reads only the columns it would scan (text, not the ids, amounts and timestamps
 * around them, nor the length headers) and makes no object per value. The prefilter's loop is scan() of
 * wardgate/masking/_prefilter_core.h, included here as it is in the masking modules.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "../../masking/_prefilter_core.h"  /* scan(): the masking prefilter's loop */

static inline int32_t
be32(const uint8_t *p)
{
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3]);
}

static inline int16_t
be16(const uint8_t *p)
{
    return (int16_t)(((uint16_t)p[0] << 8) | (uint16_t)p[1]);
}

/* The checks of decode.data_row_spans for the row at p[pos..n); on success *end is the offset past it and *count
   its value count, and spans (when not NULL) holds the start and end of its first `need` values (-1 for a NULL's
   start). Returns NULL, or the reason the row is malformed. */
static inline const char *
check_row_spans(const uint8_t *p, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t *end, Py_ssize_t *count,
                Py_ssize_t *spans, Py_ssize_t need)
{
    if (p[pos] != 'D') return "not a DataRow";
    if (n - pos < 5) return "truncated DataRow length";
    int32_t length = be32(p + pos + 1);
    Py_ssize_t e = pos + 1 + (Py_ssize_t)length;
    if (length < 6 || e > n) return "invalid DataRow length";
    int16_t c = be16(p + pos + 5);
    if (c < 0) return "negative count";
    Py_ssize_t at = pos + 7;
    for (int16_t k = 0; k < c; k++) {
        /* The reference reads a value's length wherever the buffer has four bytes, even past the row's end; a
           value length read across the end always ends in an error there too (the row cannot end where it
           should), so it is one here at once. */
        if (e - at < 4) return "value length past the end of the row";
        int32_t size = be32(p + at);
        at += 4;
        if (size == -1) {
            if (k < need) spans[2 * k] = -1;
            continue;
        }
        if (size < 0 || size > e - at) return "invalid value length";
        if (k < need) {
            spans[2 * k] = at;
            spans[2 * k + 1] = at + size;
        }
        at += size;
    }
    if (at != e) return "trailing bytes";
    *end = e;
    *count = c;
    return NULL;
}

static inline const char *
check_row(const uint8_t *p, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t *end, Py_ssize_t *count)
{
    return check_row_spans(p, n, pos, end, count, NULL, 0);
}

/* The chosen column indices, as Py_ssize_t; an index that no row can have (negative, or beyond any int16 count)
   becomes -1, which fails the per-row check as an unsigned comparison. */
static Py_ssize_t *
read_columns(PyObject *columns, Py_ssize_t *ncols, Py_ssize_t *need, Py_ssize_t *small, Py_ssize_t nsmall)
{
    PyObject *seq = PySequence_Fast(columns, "walk() columns must be a sequence of int");
    if (seq == NULL) return NULL;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t *cols = small;
    if (m > nsmall) {
        cols = PyMem_Malloc((size_t)m * sizeof(Py_ssize_t));
        if (cols == NULL) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return NULL;
        }
    }
    Py_ssize_t top = 0;
    for (Py_ssize_t k = 0; k < m; k++) {
        PyObject *item = items[k];
        if (!PyLong_Check(item)) {
            PyErr_Format(PyExc_TypeError, "walk() columns must be int, not %.100s", Py_TYPE(item)->tp_name);
            goto fail;
        }
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(item, &overflow);
        if (v == -1 && PyErr_Occurred()) goto fail;
        if (overflow || v < 0 || v > 0x7FFF) v = -1;
        cols[k] = (Py_ssize_t)v;
        if (v >= top) top = (Py_ssize_t)v + 1;
    }
    Py_DECREF(seq);
    *ncols = m;
    *need = top;
    return cols;
fail:
    if (cols != small) PyMem_Free(cols);
    Py_DECREF(seq);
    return NULL;
}

/* New references to offsets, and lists filled with them, without checks beyond allocation: pass 1 has made sure. */
#define PUT(list, idx, value) do { \
        PyObject *o_ = PyLong_FromSsize_t(value); \
        if (o_ == NULL) goto fail; \
        PyList_SET_ITEM((list), (idx), o_); \
    } while (0)

#define SMALL_COLS 32

PyDoc_STRVAR(walk_doc,
"walk(buf, columns, /)\n--\n\n"
"decode.data_row_walk in C: for a run of DataRow messages filling buf (bytes or any C-contiguous buffer), the\n"
"list [row_start, row_end, ...] and the list of each row's (start, end) for each index in columns, in that order\n"
"((-1, -1) for NULL). Raises ValueError when the run is malformed or a row has no value at a chosen index.");

static PyObject *
walk(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "walk() takes exactly 2 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t small_cols[SMALL_COLS];
    Py_ssize_t ncols = 0, need = 0;
    Py_ssize_t *cols = read_columns(args[1], &ncols, &need, small_cols, SMALL_COLS);
    if (cols == NULL) return NULL;

    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) != 0) {
        if (cols != small_cols) PyMem_Free(cols);
        return NULL;
    }
    const uint8_t *p = (const uint8_t *)view.buf;
    const Py_ssize_t n = view.len;
    PyObject *rows = NULL, *offsets = NULL, *result = NULL, *prev_end = NULL;
    Py_ssize_t spans_small[2 * SMALL_COLS];
    Py_ssize_t *spans = spans_small;  /* start and end of values 0..need-1 of the current row */

    /* Pass 1: every row is well formed and has every chosen column; count them. */
    Py_ssize_t nrows = 0;
    for (Py_ssize_t pos = 0; pos < n; nrows++) {
        Py_ssize_t end = 0, count = 0;
        const char *why = check_row(p, n, pos, &end, &count);
        if (why != NULL) {
            PyErr_SetString(PyExc_ValueError, why);
            goto fail;
        }
        for (Py_ssize_t k = 0; k < ncols; k++)
            if ((size_t)cols[k] >= (size_t)count) {
                PyErr_SetString(PyExc_ValueError, "fewer values than the result has columns");
                goto fail;
            }
        pos = end;
    }

    /* Pass 2: the lists, at their final size. */
    if (need > SMALL_COLS) {
        spans = PyMem_Malloc((size_t)need * 2 * sizeof(Py_ssize_t));
        if (spans == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    rows = PyList_New(2 * nrows);
    if (rows == NULL) goto fail;
    offsets = PyList_New(2 * nrows * ncols);
    if (offsets == NULL) goto fail;
    Py_ssize_t pos = 0, o = 0;
    for (Py_ssize_t r = 0; r < nrows; r++) {
        Py_ssize_t end = pos + 1 + (Py_ssize_t)be32(p + pos + 1);
        /* A row's start is the previous row's end: one int object for both. */
        if (prev_end != NULL) {
            Py_INCREF(prev_end);
            PyList_SET_ITEM(rows, 2 * r, prev_end);
        }
        else {
            PUT(rows, 2 * r, pos);
        }
        PUT(rows, 2 * r + 1, end);
        prev_end = PyList_GET_ITEM(rows, 2 * r + 1);
        Py_ssize_t at = pos + 7;
        for (Py_ssize_t k = 0; k < need; k++) {
            int32_t size = be32(p + at);
            at += 4;
            if (size < 0) {
                spans[2 * k] = spans[2 * k + 1] = -1;
            }
            else {
                spans[2 * k] = at;
                spans[2 * k + 1] = at + size;
                at += size;
            }
        }
        for (Py_ssize_t k = 0; k < ncols; k++) {
            Py_ssize_t c = cols[k];
            PUT(offsets, o, spans[2 * c]);
            if (spans[2 * c + 1] == end) {  /* the row's last value ends where the row does: one int for both */
                Py_INCREF(prev_end);
                PyList_SET_ITEM(offsets, o + 1, prev_end);
            }
            else {
                PUT(offsets, o + 1, spans[2 * c + 1]);
            }
            o += 2;
        }
        pos = end;
    }
    result = PyTuple_Pack(2, rows, offsets);
fail:
    Py_XDECREF(rows);
    Py_XDECREF(offsets);
    if (spans != spans_small) PyMem_Free(spans);
    if (cols != small_cols) PyMem_Free(cols);
    PyBuffer_Release(&view);
    return result;
}

#ifdef HAVE_REGION_TEST
/* Moves *at past `count` values of a row that ends at e; 0 when one would not fit. One comparison a value: a
   length that runs past e (negative ones other than NULL's -1 are huge as unsigned) leaves *at past e, which the
   next value's check or the caller's *at == e catches. */
static inline int
skip_values(const uint8_t *p, Py_ssize_t e, Py_ssize_t *at, Py_ssize_t count)
{
    Py_ssize_t a = *at;
    for (Py_ssize_t k = 0; k < count; k++) {
        if (a > e - 4) return 0;
        const uint32_t size = (uint32_t)be32(p + a);
        a += 4 + (size == 0xFFFFFFFFu ? 0 : (Py_ssize_t)size);
    }
    *at = a;
    return 1;
}

/* The checks of check_row_spans() for the row at p[pos..n), stricter where that is simpler (any surprise answers 0,
   and the caller then reads the row with check_row_spans(), which says what is wrong or accepts it), recording
   only what the region test needs: *first, where the data of value lo starts, and *last, where the data of value
   hi ends (lo <= hi, the least and greatest chosen index). Every chosen value lies in p[*first..*last). Why: the
   spans of every value and a pass over the chosen ones to find the same two offsets were two thirds of the row
   test's instructions on rows that the region test clears, which are almost all rows. */
static inline int
row_region(const uint8_t *p, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t *end,
           Py_ssize_t *first, Py_ssize_t *last)
{
    if (n - pos < 7 || p[pos] != 'D') return 0;
    const int32_t length = be32(p + pos + 1);
    const Py_ssize_t e = pos + 1 + (Py_ssize_t)length;
    const Py_ssize_t c = be16(p + pos + 5);
    if (length < 6 || e > n || c <= hi) return 0;  /* a negative count too */
    Py_ssize_t at = pos + 7;
    if (!skip_values(p, e, &at, lo)) return 0;
    *first = at + 4;
    if (!skip_values(p, e, &at, hi - lo + 1)) return 0;
    *last = at;
    if (!skip_values(p, e, &at, c - hi - 1) || at != e) return 0;
    *end = e;
    return 1;
}
#endif

/* The row at p[pos..n), read exactly: its end in *end, and *found = 1 when a chosen value may match; NULL, or why
   the row is malformed. */
static inline __attribute__((always_inline)) const char *
exact_row(const uint8_t *p, Py_ssize_t n, Py_ssize_t pos, const Py_ssize_t *cols, const Py_ssize_t *skips,
          Py_ssize_t ncols, Py_ssize_t need, int bad, unsigned det, Py_ssize_t *spans, Py_ssize_t *end, int *found)
{
    Py_ssize_t count = 0;
    const char *why = check_row_spans(p, n, pos, end, &count, spans, need);
    if (why != NULL) return why;
    if (bad || need > count) return "fewer values than the result has columns";
    for (Py_ssize_t k = 0; k < ncols; k++) {
        Py_ssize_t c = cols[k];
        Py_ssize_t s = spans[2 * c], e = spans[2 * c + 1];
        if (s < 0 || s + skips[k] >= e) continue;
        if (scan_in(p + s + skips[k], e - s - skips[k], det, n - s - skips[k])) {
            *found = 1;
            return NULL;
        }
    }
    return NULL;
}

/* The rows of a run, one after another, until one may match (*found = 1); NULL, or why the run is malformed. */
static const char *
rows_plain(const uint8_t *p, Py_ssize_t n, const Py_ssize_t *cols, const Py_ssize_t *skips, Py_ssize_t ncols,
           Py_ssize_t need, int bad, unsigned det, Py_ssize_t *spans, int *found)
{
    for (Py_ssize_t pos = 0; pos < n && !*found;) {
        const char *why = exact_row(p, n, pos, cols, skips, ncols, need, bad, det, spans, &pos, found);
        if (why != NULL) return why;
    }
    return NULL;
}

#ifdef HAVE_REGION_TEST
#define BATCH 16

/* rows_plain() where a row whose chosen values lie within REGION_MAX bytes is first tested whole (the region test
   of _prefilter_core.h: AVX-512 when wide, else AVX2); lo and hi are the least and greatest chosen index. Rows are
   taken BATCH at a time: first the region of each is found (row_region), then each region is tested. Why:
   finding a region is a chain of dependent loads (each value's length says where the next one is), ~6 of them a
   row; walked one row at a time, each row's chain waited for the previous row's test, and the chains were most
   of the time. Walked together, the rows' chains overlap. A row that row_region() or the region test does not
   clear is read by exact_row(), in order, so that errors and the answer are those of rows_plain(). Inlined into
   one function per instruction set (rows_avx2, rows_avx512), where `wide` is a constant. */
static inline __attribute__((always_inline)) const char *
rows_region(const uint8_t *p, Py_ssize_t n, const Py_ssize_t *cols, const Py_ssize_t *skips, Py_ssize_t ncols,
            Py_ssize_t need, int bad, unsigned det, Py_ssize_t *spans, int *found, Py_ssize_t lo, Py_ssize_t hi,
            int wide)
{
    Py_ssize_t pos = 0;
    while (pos < n) {
        Py_ssize_t ends[BATCH], firsts[BATCH], lasts[BATCH];
        int m = 0;
        for (Py_ssize_t at = pos; m < BATCH && at < n; at = ends[m++])
            if (!row_region(p, n, at, lo, hi, &ends[m], &firsts[m], &lasts[m])) break;
        for (int i = 0; i < m; i++) {
            const Py_ssize_t first = firsts[i], last = lasts[i];
            if (last <= first || (last - first <= REGION_MAX
                                  && (wide ? region_clear_avx512(p + first, last - first)
                                           : region_clear_avx2(p + first, last - first, n - first))))
                continue;
            Py_ssize_t end = 0;
            const char *why = exact_row(p, n, i ? ends[i - 1] : pos, cols, skips, ncols, need, bad, det, spans, &end,
                                        found);
            if (why != NULL || *found) return why;
        }
        if (m > 0) pos = ends[m - 1];
        if (m < BATCH && pos < n) {  /* row_region() did not take the row at pos */
            const char *why = exact_row(p, n, pos, cols, skips, ncols, need, bad, det, spans, &pos, found);
            if (why != NULL || *found) return why;
        }
    }
    return NULL;
}

__attribute__((target("avx2,popcnt"))) static const char *
rows_avx2(const uint8_t *p, Py_ssize_t n, const Py_ssize_t *cols, const Py_ssize_t *skips, Py_ssize_t ncols,
          Py_ssize_t need, int bad, unsigned det, Py_ssize_t *spans, int *found, Py_ssize_t lo, Py_ssize_t hi)
{
    return rows_region(p, n, cols, skips, ncols, need, bad, det, spans, found, lo, hi, 0);
}

__attribute__((target(REGION_AVX512))) static const char *
rows_avx512(const uint8_t *p, Py_ssize_t n, const Py_ssize_t *cols, const Py_ssize_t *skips, Py_ssize_t ncols,
            Py_ssize_t need, int bad, unsigned det, Py_ssize_t *spans, int *found, Py_ssize_t lo, Py_ssize_t hi)
{
    return rows_region(p, n, cols, skips, ncols, need, bad, det, spans, found, lo, hi, 1);
}
#undef BATCH
#endif

PyDoc_STRVAR(may_match_doc,
"may_match(buf, columns, skips, detectors, /)\n--\n\n"
"decode.data_rows_may_match in C: True as soon as the value at columns[k] of a row, after its first skips[k]\n"
"bytes, may hold a match of the built-in detectors whose bits are set in detectors (the masking prefilter's\n"
"question); False when no chosen value of any row does. Raises ValueError when a row read on the way is\n"
"malformed or has no value at a chosen index; rows after the first that may match are not read.");

static PyObject *
may_match(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "may_match() takes exactly 4 arguments (%zd given)", nargs);
        return NULL;
    }
    unsigned det;
    if (detector_bits(args[3], "may_match", 1, &det) != 0) return NULL;
    Py_ssize_t small_cols[SMALL_COLS], small_skips[SMALL_COLS];
    Py_ssize_t ncols = 0, need = 0, nskips = 0, unused = 0;
    Py_ssize_t *cols = read_columns(args[1], &ncols, &need, small_cols, SMALL_COLS);
    if (cols == NULL) return NULL;
    Py_ssize_t *skips = read_columns(args[2], &nskips, &unused, small_skips, SMALL_COLS);
    PyObject *result = NULL;
    Py_buffer view = {0};
    Py_ssize_t spans_small[2 * SMALL_COLS];
    Py_ssize_t *spans = spans_small;
    if (skips == NULL) goto done;
    if (nskips != ncols) {
        PyErr_SetString(PyExc_ValueError, "may_match() needs one skip per column");
        goto done;
    }
    for (Py_ssize_t k = 0; k < nskips; k++)
        if (skips[k] < 0) {
            PyErr_SetString(PyExc_ValueError, "may_match() skips must be from 0 to 32767");
            goto done;
        }
    if (need > SMALL_COLS) {
        spans = PyMem_Malloc((size_t)need * 2 * sizeof(Py_ssize_t));
        if (spans == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) != 0) {
        view.obj = NULL;
        goto done;
    }
    int bad = 0;  /* an index no row can have (read_columns' -1): an error at the first row, as a short row is */
    for (Py_ssize_t k = 0; k < ncols; k++)
        if (cols[k] < 0) bad = 1;
    const uint8_t *p = (const uint8_t *)view.buf;
    const Py_ssize_t n = view.len;
    int found = 0;
    const char *why;
#ifdef HAVE_REGION_TEST
    const int level = ncols > 1 && !bad ? region_level() : 0;
    if (level > 0) {
        Py_ssize_t lo = cols[0];
        for (Py_ssize_t k = 1; k < ncols; k++)
            if (cols[k] < lo) lo = cols[k];
        why = (level == 2 ? rows_avx512 : rows_avx2)(p, n, cols, skips, ncols, need, bad, det, spans, &found, lo,
                                                     need - 1);
    }
    else
#endif
        why = rows_plain(p, n, cols, skips, ncols, need, bad, det, spans, &found);
    if (why != NULL) {
        PyErr_SetString(PyExc_ValueError, why);
        goto done;
    }
    result = PyBool_FromLong(found);
done:
    if (view.obj != NULL) PyBuffer_Release(&view);
    if (spans != spans_small) PyMem_Free(spans);
    if (skips != NULL && skips != small_skips) PyMem_Free(skips);
    if (cols != small_cols) PyMem_Free(cols);
    return result;
}

PyDoc_STRVAR(isa_doc,
"isa(/)\n--\n\n"
"Which row test may_match runs on this CPU: 'avx512', 'avx2' or 'portable' (every value scanned), after\n"
"WARDGATE_PREFILTER_ISA's cap. For the tests and bench/rowtest.py, which say which path they timed or checked.");

static PyObject *
isa(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
#ifdef HAVE_REGION_TEST
    const int level = region_level();
#else
    const int level = 0;
#endif
    return PyUnicode_FromString(level == 2 ? "avx512" : level == 1 ? "avx2" : "portable");
}

static PyMethodDef methods[] = {
    {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL, walk_doc},
    {"may_match", (PyCFunction)(void (*)(void))may_match, METH_FASTCALL, may_match_doc},
    {"isa", isa, METH_NOARGS, isa_doc},
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
    .m_name = "wardgate.protocols.postgres._datarow",
    .m_doc = "The walk over a run of DataRow messages of wardgate.protocols.postgres.decode.data_row_walk, in C.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__datarow(void)
{
    return PyModuleDef_Init(&module_def);
}
