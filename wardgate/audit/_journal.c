/*
 * wardgate.audit._journal: the audit journal's record encoding, in C.
 *
 * encode(records) returns the journal bytes of a batch of (table, key, values) records, each framed as
 * journal.py documents: length (u32, big-endian) | crc32 (u32, big-endian, zlib's) | payload. The payload is the
 * compact form below when the record holds only the types it covers, else marshal.dumps(record) as before. The
 * first byte tells them apart: the compact form starts with 0, which marshal never writes first (its type codes
 * are printable ASCII, with 0x80 as a flag). decode_payload(buf) reads a compact payload back.
 *
 * Why: the gateway encodes one record per statement on the relay's path, before the client hears of the
 * statement. marshal.dumps cost ~8,000 instructions a select-only record (it keeps a table of every object it
 * wrote, to share repeats, and grows its output from 50 bytes), and the loop framing its output ~5,000 more:
 * together a quarter of the gateway's instructions per statement. This writes the batch in one pass.
 *
 * The compact form, after its 0 byte, is one value:
 *   'N' None | 'T' True | 'F' False | 'i' int64 | 'd' float64 (IEEE 754) | 's' u32 n, n bytes of UTF-8 |
 *   'b' u32 n, n bytes | '(' u32 n, n values (a tuple) | '{' u32 n, n pairs of values (a dict, in order)
 * with integers little-endian. Only exact types (no subclasses), ints within int64, str that is valid UTF-8,
 * and nesting up to MAX_DEPTH: anything else sends the whole record to marshal, which decides as it did.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <marshal.h>

#include <stdint.h>
#include <string.h>
#include <zlib.h>

#define MAX_DEPTH 16
#define COMPACT 0
#define MARSHAL_VERSION 4  /* marshal.dumps' default in every Python this runs on */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} Out;

static int
reserve(Out *o, size_t more)
{
    if (o->cap - o->len >= more) return 0;
    size_t cap = o->cap ? o->cap : 1024;
    while (cap - o->len < more) {
        if (cap > SIZE_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    uint8_t *b = PyMem_Realloc(o->buf, cap);
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->buf = b;
    o->cap = cap;
    return 0;
}

static inline void
put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t
get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A tag and a u32 count or length. */
static int
put_head(Out *o, uint8_t tag, Py_ssize_t n)
{
    if ((size_t)n > UINT32_MAX) return 1;
    if (reserve(o, 5) < 0) return -1;
    o->buf[o->len] = tag;
    put_le(o->buf + o->len + 1, (uint64_t)n, 4);
    o->len += 5;
    return 0;
}

/* Writes v in the compact form: 0 done, 1 not expressible (the caller falls back to marshal), -1 error set. */
static int
put_value(Out *o, PyObject *v, int depth)
{
    if (depth > MAX_DEPTH) return 1;
    if (v == Py_None || v == Py_True || v == Py_False) {
        if (reserve(o, 1) < 0) return -1;
        o->buf[o->len++] = v == Py_None ? 'N' : v == Py_True ? 'T' : 'F';
        return 0;
    }
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyUnicode_Type) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        if (s == NULL) {  /* a lone surrogate: marshal writes it with surrogatepass */
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
            PyErr_Clear();
            return 1;
        }
        int r = put_head(o, 's', n);
        if (r != 0) return r;
        if (reserve(o, (size_t)n) < 0) return -1;
        memcpy(o->buf + o->len, s, (size_t)n);
        o->len += (size_t)n;
        return 0;
    }
    if (t == &PyLong_Type) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) return 1;
        if (x == -1 && PyErr_Occurred()) return -1;
        if (reserve(o, 9) < 0) return -1;
        o->buf[o->len] = 'i';
        put_le(o->buf + o->len + 1, (uint64_t)x, 8);
        o->len += 9;
        return 0;
    }
    if (t == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(v);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        if (reserve(o, 9) < 0) return -1;
        o->buf[o->len] = 'd';
        put_le(o->buf + o->len + 1, bits, 8);
        o->len += 9;
        return 0;
    }
    if (t == &PyBytes_Type) {
        Py_ssize_t n = PyBytes_GET_SIZE(v);
        int r = put_head(o, 'b', n);
        if (r != 0) return r;
        if (reserve(o, (size_t)n) < 0) return -1;
        memcpy(o->buf + o->len, PyBytes_AS_STRING(v), (size_t)n);
        o->len += (size_t)n;
        return 0;
    }
    if (t == &PyTuple_Type) {
        Py_ssize_t n = PyTuple_GET_SIZE(v);
        int r = put_head(o, '(', n);
        for (Py_ssize_t i = 0; r == 0 && i < n; i++) r = put_value(o, PyTuple_GET_ITEM(v, i), depth + 1);
        return r;
    }
    if (t == &PyDict_Type) {
        int r = put_head(o, '{', PyDict_GET_SIZE(v));
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (r == 0 && PyDict_Next(v, &pos, &key, &value)) {
            r = put_value(o, key, depth + 1);
            if (r == 0) r = put_value(o, value, depth + 1);
        }
        return r;
    }
    return 1;
}

PyDoc_STRVAR(encode_doc,
"encode(records, /)\n--\n\n"
"The journal bytes of records (a list of (table, key, values) tuples): each framed as length | crc32 | payload,\n"
"the payload compact where the record allows, else marshal.dumps(record). Raises ValueError as marshal.dumps\n"
"does for a record it cannot write.");

static PyObject *
encode(PyObject *Py_UNUSED(module), PyObject *records)
{
    if (!PyList_Check(records)) {
        PyErr_Format(PyExc_TypeError, "encode() takes a list, not %.100s", Py_TYPE(records)->tp_name);
        return NULL;
    }
    Out o = {NULL, 0, 0};
    Py_ssize_t n = PyList_GET_SIZE(records);
    if (reserve(&o, (size_t)n * 512 + 64) < 0) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        size_t head = o.len;
        if (reserve(&o, 9) < 0) goto fail;
        o.len += 8;
        o.buf[o.len++] = COMPACT;
        int r = put_value(&o, record, 0);
        if (r < 0) goto fail;
        if (r > 0) {  /* not expressible: marshal's bytes, or its error */
            o.len = head + 8;
            PyObject *m = PyMarshal_WriteObjectToString(record, MARSHAL_VERSION);
            if (m == NULL) goto fail;
            Py_ssize_t mn = PyBytes_GET_SIZE(m);
            if (reserve(&o, (size_t)mn) < 0) {
                Py_DECREF(m);
                goto fail;
            }
            memcpy(o.buf + o.len, PyBytes_AS_STRING(m), (size_t)mn);
            o.len += (size_t)mn;
            Py_DECREF(m);
        }
        size_t size = o.len - head - 8;
        if (size > UINT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "an audit record of 4 GiB or more");
            goto fail;
        }
        uint32_t crc = (uint32_t)crc32(0L, o.buf + head + 8, (uInt)size);
        uint8_t *h = o.buf + head;
        h[0] = (uint8_t)(size >> 24); h[1] = (uint8_t)(size >> 16); h[2] = (uint8_t)(size >> 8); h[3] = (uint8_t)size;
        h[4] = (uint8_t)(crc >> 24); h[5] = (uint8_t)(crc >> 16); h[6] = (uint8_t)(crc >> 8); h[7] = (uint8_t)crc;
    }
    PyObject *out = PyBytes_FromStringAndSize((const char *)o.buf, (Py_ssize_t)o.len);
    PyMem_Free(o.buf);
    return out;
fail:
    PyMem_Free(o.buf);
    return NULL;
}

typedef struct {
    const uint8_t *p;
    size_t pos, n;
} In;

static PyObject *
bad(const char *why, size_t at)
{
    PyErr_Format(PyExc_ValueError, "compact journal record: %s at byte %zu", why, at);
    return NULL;
}

/* A u32 count or length after a tag, which the remaining bytes must be able to hold (`unit` bytes each at least). */
static int
get_count(In *in, size_t unit, size_t *n)
{
    if (in->n - in->pos < 4) {
        bad("truncated length", in->pos);
        return -1;
    }
    *n = (size_t)get_le(in->p + in->pos, 4);
    in->pos += 4;
    if (*n > (in->n - in->pos) / unit) {
        bad("length past the end", in->pos);
        return -1;
    }
    return 0;
}

static PyObject *
get_value(In *in, int depth)
{
    if (depth > MAX_DEPTH) return bad("nested too deep", in->pos);
    if (in->pos >= in->n) return bad("truncated", in->pos);
    uint8_t tag = in->p[in->pos++];
    size_t n;
    switch (tag) {
    case 'N':
        Py_RETURN_NONE;
    case 'T':
        Py_RETURN_TRUE;
    case 'F':
        Py_RETURN_FALSE;
    case 'i':
    case 'd': {
        if (in->n - in->pos < 8) return bad("truncated number", in->pos);
        uint64_t bits = get_le(in->p + in->pos, 8);
        in->pos += 8;
        if (tag == 'i') return PyLong_FromLongLong((long long)bits);
        double d;
        memcpy(&d, &bits, 8);
        return PyFloat_FromDouble(d);
    }
    case 's':
    case 'b': {
        if (get_count(in, 1, &n) < 0) return NULL;
        const char *s = (const char *)in->p + in->pos;
        in->pos += n;
        if (tag == 'b') return PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
        return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, NULL);  /* strict: the encoder wrote valid UTF-8 only */
    }
    case '(': {
        if (get_count(in, 1, &n) < 0) return NULL;
        PyObject *t = PyTuple_New((Py_ssize_t)n);
        if (t == NULL) return NULL;
        for (size_t i = 0; i < n; i++) {
            PyObject *item = get_value(in, depth + 1);
            if (item == NULL) {
                Py_DECREF(t);
                return NULL;
            }
            PyTuple_SET_ITEM(t, (Py_ssize_t)i, item);
        }
        return t;
    }
    case '{': {
        if (get_count(in, 2, &n) < 0) return NULL;
        PyObject *d = PyDict_New();
        if (d == NULL) return NULL;
        for (size_t i = 0; i < n; i++) {
            PyObject *k = get_value(in, depth + 1);
            PyObject *v = k == NULL ? NULL : get_value(in, depth + 1);
            if (v == NULL || PyDict_SetItem(d, k, v) < 0) {  /* an unhashable key raises TypeError */
                Py_XDECREF(k);
                Py_XDECREF(v);
                Py_DECREF(d);
                return NULL;
            }
            Py_DECREF(k);
            Py_DECREF(v);
        }
        return d;
    }
    default:
        return bad("unknown type", in->pos - 1);
    }
}

PyDoc_STRVAR(decode_payload_doc,
"decode_payload(buf, /)\n--\n\n"
"The record of a compact payload (its first byte 0). Raises ValueError for anything that encode() did not write\n"
"(TypeError for a dict key that cannot be hashed).");

static PyObject *
decode_payload(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    In in = {(const uint8_t *)view.buf, 1, (size_t)view.len};
    PyObject *v = NULL;
    if (view.len < 1 || in.p[0] != COMPACT)
        bad("not a compact record", 0);
    else {
        v = get_value(&in, 0);
        if (v != NULL && in.pos != in.n) {
            Py_CLEAR(v);
            bad("trailing bytes", in.pos);
        }
    }
    PyBuffer_Release(&view);
    return v;
}

static PyMethodDef methods[] = {
    {"encode", (PyCFunction)encode, METH_O, encode_doc},
    {"decode_payload", (PyCFunction)decode_payload, METH_O, decode_payload_doc},
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
    .m_name = "wardgate.audit._journal",
    .m_doc = "The audit journal's record encoding (wardgate.audit.journal), in C.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__journal(void)
{
    return PyModuleDef_Init(&module_def);
}
