/*
 * wardgate.audit._chain: the canonical JSON of a positional audit record, in C.
 *
 * insert_text(table, values, at, replacement) returns the text chain.canonical(table, None, v) gives, where v is
 * ``values`` (a tuple) with v[at] replaced by ``replacement`` when at >= 0 (a statement's result sample is chained
 * by its digest: chain.sample_digest). It returns None when a value is not one this writes exactly as the json
 * module does (only exact str, int within int64, finite float, bool and None are), and the caller encodes the
 * record in Python instead; so the text is always json's, byte for byte.
 *
 * Why: the shipper chains every statement it stores. In Python the record's canonical text (copy the tuple with
 * the digest in, build the [table, key, list] document, run json's C encoder over it, join its chunks) cost
 * ~5 us of the ~21 us the shipper spends per select-only record; on a 2-core machine that CPU is taken from the
 * relay (docs/benchmark.md, "One client").
 *
 * json's rules, with ensure_ascii=False (what chain._dumps sets): a string is quoted, with \" \\ \b \f \n \r \t
 * and any other code point below 0x20 as \u00xx (lower-case hex); everything else is written as it is. A float
 * is float.__repr__; an int, int.__repr__; True, False, None are true, false, null. Escaping the UTF-8 bytes is
 * the same as escaping the code points: every byte of a multi-byte sequence is >= 0x80.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    char *buf;
    size_t len, cap;
} Out;

static int
reserve(Out *o, size_t more)
{
    if (o->cap - o->len >= more) return 0;
    size_t cap = o->cap ? o->cap : 512;
    while (cap - o->len < more) {
        if (cap > SIZE_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *b = PyMem_Realloc(o->buf, cap);
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->buf = b;
    o->cap = cap;
    return 0;
}

static int
put(Out *o, const char *s, size_t n)
{
    if (reserve(o, n) < 0) return -1;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    return 0;
}

static const char HEX[] = "0123456789abcdef";

/* A quoted, escaped string: 0 done, 1 not writable here (a lone surrogate), -1 error set. */
static int
put_str(Out *o, PyObject *v)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n);
    if (s == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
        PyErr_Clear();
        return 1;
    }
    if (reserve(o, (size_t)n * 6 + 2) < 0) return -1;  /* the longest escape is 6 bytes for 1 */
    char *p = o->buf + o->len;
    *p++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *p++ = (char)c;
            continue;
        }
        *p++ = '\\';
        switch (c) {
        case '"': *p++ = '"'; break;
        case '\\': *p++ = '\\'; break;
        case '\b': *p++ = 'b'; break;
        case '\f': *p++ = 'f'; break;
        case '\n': *p++ = 'n'; break;
        case '\r': *p++ = 'r'; break;
        case '\t': *p++ = 't'; break;
        default:
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = HEX[c >> 4];
            *p++ = HEX[c & 0xf];
        }
    }
    *p++ = '"';
    o->len = (size_t)(p - o->buf);
    return 0;
}

/* One value as json writes it: 0 done, 1 not writable here, -1 error set. */
static int
put_value(Out *o, PyObject *v)
{
    if (v == Py_None) return put(o, "null", 4);
    if (v == Py_True) return put(o, "true", 4);
    if (v == Py_False) return put(o, "false", 5);
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyUnicode_Type) return put_str(o, v);
    if (t == &PyLong_Type) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) return 1;
        if (x == -1 && PyErr_Occurred()) return -1;
        char digits[24];
        int k = snprintf(digits, sizeof digits, "%lld", x);
        return put(o, digits, (size_t)k);
    }
    if (t == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(v);
        if (!isfinite(d)) return 1;  /* json (allow_nan=False) refuses it; the caller's Python path says so */
        char *r = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);  /* float.__repr__ exactly */
        if (r == NULL) return -1;
        int rc = put(o, r, strlen(r));
        PyMem_Free(r);
        return rc;
    }
    return 1;
}

PyDoc_STRVAR(insert_text_doc,
"insert_text(table, values, at, replacement, /)\n--\n\n"
"The canonical JSON of the insert [table, null, list(values)], values[at] replaced by replacement when at >= 0;\n"
"None when a value is not an exact str, int (int64), finite float, bool or None.");

static PyObject *
insert_text(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "insert_text takes 4 arguments");
        return NULL;
    }
    PyObject *table = args[0], *values = args[1], *replacement = args[3];
    if (!PyUnicode_CheckExact(table) || !PyTuple_CheckExact(values)) {
        PyErr_SetString(PyExc_TypeError, "insert_text takes a str and a tuple");
        return NULL;
    }
    Py_ssize_t at = PyLong_AsSsize_t(args[2]);
    if (at == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(values);
    if (at >= n) {
        PyErr_SetString(PyExc_IndexError, "insert_text: replacement index out of range");
        return NULL;
    }
    Out o = {NULL, 0, 0};
    int r = put(&o, "[", 1);
    if (r == 0) r = put_str(&o, table);
    if (r == 0) r = put(&o, ",null,[", 7);
    for (Py_ssize_t i = 0; r == 0 && i < n; i++) {
        if (i > 0) r = put(&o, ",", 1);
        if (r == 0) r = put_value(&o, i == at ? replacement : PyTuple_GET_ITEM(values, i));
    }
    if (r == 0) r = put(&o, "]]", 2);
    PyObject *result = NULL;
    if (r == 0)
        result = PyUnicode_DecodeUTF8(o.buf, (Py_ssize_t)o.len, "strict");
    else if (r == 1)
        result = Py_NewRef(Py_None);
    PyMem_Free(o.buf);
    return result;
}

static PyMethodDef methods[] = {
    {"insert_text", (PyCFunction)(void (*)(void))insert_text, METH_FASTCALL, insert_text_doc},
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
    .m_name = "wardgate.audit._chain",
    .m_doc = "The canonical JSON of a positional audit record (wardgate.audit.chain), in C.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__chain(void)
{
    return PyModuleDef_Init(&module_def);
}
