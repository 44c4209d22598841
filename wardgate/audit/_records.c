/*
 * wardgate.audit._records: audit records encoded in C, for the journal (framed, compact), for the hash chain
 * (canonical JSON) and for the SQLite store (a batch's times as text). One module: the shipper's per-record work
 * that repays C, the encoders writing one record's values in one pass into a growing buffer.
 *
 * --- The journal (journal.py) ---
 *
 * encode(records) returns the journal bytes of a batch of (table, key, values) records, each framed as
 * journal.py documents: length (u32, big-endian) | checksum (u32, big-endian) | payload. The payload is the
 * compact form below when the record holds only the types it covers, else marshal.dumps(record) as before. The
 * first byte tells them apart and names the checksum: 1, the compact form checked by CRC-32C (Castagnoli, the
 * CPU's crc32 instruction where it has SSE4.2); 0, the compact form checked by zlib's CRC-32 (written until
 * 2026-12-07, still read); anything else, marshal's bytes checked by zlib's CRC-32 (marshal never writes 0 or 1
 * first: its type codes are printable ASCII, with 0x80 as a flag). decode_payload(buf) reads a compact payload
 * back; crc32c(buf) is the checksum the reader compares.
 *
 * Why CRC-32C: zlib's CRC-32 of a select-only record was ~1,400 instructions of the ~46,000 the relay spends on a
 * statement; the crc32 instruction takes 8 bytes at a time (~60).
 *
 * Why: the gateway encodes one record per statement on the relay's path, before the client hears of the
 * statement. marshal.dumps cost ~8,000 instructions a select-only record (it keeps a table of every object it
 * wrote, to share repeats, and grows its output from 50 bytes), and the loop framing its output ~5,000 more:
 * together a quarter of the gateway's instructions per statement. This writes the batch in one pass.
 *
 * The compact form, after its 0 or 1 byte, is one value:
 *   'N' None | 'T' True | 'F' False | 'i' int64 | 'd' float64 (IEEE 754) | 's' u32 n, n bytes of UTF-8 |
 *   'b' u32 n, n bytes | '(' u32 n, n values (a tuple) | '{' u32 n, n pairs of values (a dict, in order)
 * with integers little-endian. Only exact types (no subclasses), ints within int64, str that is valid UTF-8,
 * and nesting up to MAX_DEPTH: anything else sends the whole record to marshal, which decides as it did.
 *
 * --- The chain (chain.py) ---
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
 * --- The store (store/db.py) ---
 *
 * sqlite_rows(rows, slots, convert) returns the rows (tuples) with the value at each index in ``slots`` turned into
 * the text SQLAlchemy's DateTime keeps in SQLite: an exact float or int of epoch seconds, from 0 to the end of
 * year 9999, is written here as store.db.sqlite_time writes it ("YYYY-MM-DD HH:MM:SS.ffffff", UTC, microseconds
 * rounded half to even, as datetime.fromtimestamp does); None and str stay as they are; anything else, and a time
 * whose microseconds round up to the next second, goes to ``convert`` (store.db's own converter), so the text is
 * always the Python's. Why: the shipper converts every record's start time; the Python loop (copy the tuple,
 * convert, rebuild it) cost ~1.5 us a record of the shipper's ~17.
 *
 * json's rules, with ensure_ascii=False (what chain._dumps sets): a string is quoted, with \" \\ \b \f \n \r \t
 * and any other code point below 0x20 as \u00xx (lower-case hex); everything else is written as it is. A float
 * is float.__repr__; an int, int.__repr__; True, False, None are true, false, null. Escaping the UTF-8 bytes is
 * the same as escaping the code points: every byte of a multi-byte sequence is >= 0x80.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <marshal.h>

#include <math.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

/* --- A growing output buffer --- */

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

static int
put_bytes(Out *o, const char *s, size_t n)
{
    if (reserve(o, n) < 0) return -1;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    return 0;
}

/* --- The journal --- */
#define MAX_DEPTH 16
#define COMPACT_CRC32 0  /* the compact form under zlib's CRC-32: read, no longer written */
#define COMPACT 1        /* the compact form under CRC-32C */
#define MARSHAL_VERSION 4  /* marshal.dumps' default in every Python this runs on */

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
        return r != 0 ? r : put_bytes(o, s, (size_t)n);
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
        return r != 0 ? r : put_bytes(o, PyBytes_AS_STRING(v), (size_t)n);
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

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI and ext4 use it: the crc32 instruction of
 * SSE4.2 where the CPU has it, else a byte table. Both give the same value (tests compare them). */
static uint32_t crc32c_table[256];

static void
crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc32c_table[i] = c;
    }
}

static uint32_t
crc32c_portable(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    while (n--) c = crc32c_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HAVE_CRC32C_SSE42 1

__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(const uint8_t *p, size_t n)
{
    uint64_t c = 0xFFFFFFFFu;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);  /* unaligned, little-endian: the instruction's byte order */
        c = _mm_crc32_u64(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = _mm_crc32_u8(c32, *p++);
    return c32 ^ 0xFFFFFFFFu;
}
#endif

static int crc32c_hw = 0;  /* set once at import: the CPU has SSE4.2 */

static uint32_t
crc32c(const uint8_t *p, size_t n)
{
#ifdef HAVE_CRC32C_SSE42
    if (crc32c_hw) return crc32c_sse42(p, n);
#endif
    return crc32c_portable(p, n);
}

PyDoc_STRVAR(crc32c_doc,
"crc32c(buf, portable=False, /)\n--\n\n"
"The CRC-32C of a buffer (the checksum of a journal record whose payload starts with 1). portable: the byte\n"
"table's answer even where the CPU's instruction is used (the tests compare the two).");

static PyObject *
crc32c_py(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "crc32c() takes 1 or 2 arguments (%zd given)", nargs);
        return NULL;
    }
    int portable = nargs == 2 ? PyObject_IsTrue(args[1]) : 0;
    if (portable < 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    const uint8_t *p = (const uint8_t *)view.buf;
    uint32_t c = portable ? crc32c_portable(p, (size_t)view.len) : crc32c(p, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(c);
}

PyDoc_STRVAR(crc32c_hw_doc,
"crc32c_hardware()\n--\n\n"
"Whether crc32c() uses the CPU's crc32 instruction (SSE4.2) here.");

static PyObject *
crc32c_hw_py(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(arg))
{
    return PyBool_FromLong(crc32c_hw);
}

PyDoc_STRVAR(encode_doc,
"encode(records, /)\n--\n\n"
"The journal bytes of records (a list of (table, key, values) tuples): each framed as length | checksum |\n"
"payload, the payload compact (CRC-32C) where the record allows, else marshal.dumps(record) (zlib's CRC-32).\n"
"Raises ValueError as marshal.dumps\n"
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
            int w = put_bytes(&o, PyBytes_AS_STRING(m), (size_t)PyBytes_GET_SIZE(m));
            Py_DECREF(m);
            if (w < 0) goto fail;
        }
        size_t size = o.len - head - 8;
        if (size > UINT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "an audit record of 4 GiB or more");
            goto fail;
        }
        const uint8_t *payload = o.buf + head + 8;
        uint32_t crc = payload[0] == COMPACT ? crc32c(payload, size) : (uint32_t)crc32(0L, payload, (uInt)size);
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
    if (view.len < 1 || (in.p[0] != COMPACT && in.p[0] != COMPACT_CRC32))
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

/* --- The chain --- */

static const char HEX[] = "0123456789abcdef";

/* A quoted, escaped JSON string: 0 done, 1 not writable here (a lone surrogate), -1 error set. */
static int
json_str(Out *o, PyObject *v)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n);
    if (s == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
        PyErr_Clear();
        return 1;
    }
    if (reserve(o, (size_t)n * 6 + 2) < 0) return -1;  /* the longest escape is 6 bytes for 1 */
    uint8_t *p = o->buf + o->len;
    *p++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *p++ = c;
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
json_value(Out *o, PyObject *v)
{
    if (v == Py_None) return put_bytes(o, "null", 4);
    if (v == Py_True) return put_bytes(o, "true", 4);
    if (v == Py_False) return put_bytes(o, "false", 5);
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyUnicode_Type) return json_str(o, v);
    if (t == &PyLong_Type) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) return 1;
        if (x == -1 && PyErr_Occurred()) return -1;
        char digits[24];
        int k = snprintf(digits, sizeof digits, "%lld", x);
        return put_bytes(o, digits, (size_t)k);
    }
    if (t == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(v);
        if (!isfinite(d)) return 1;  /* json (allow_nan=False) refuses it; the caller's Python path says so */
        char *r = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);  /* float.__repr__ exactly */
        if (r == NULL) return -1;
        int rc = put_bytes(o, r, strlen(r));
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
    int r = put_bytes(&o, "[", 1);
    if (r == 0) r = json_str(&o, table);
    if (r == 0) r = put_bytes(&o, ",null,[", 7);
    for (Py_ssize_t i = 0; r == 0 && i < n; i++) {
        if (i > 0) r = put_bytes(&o, ",", 1);
        if (r == 0) r = json_value(&o, i == at ? replacement : PyTuple_GET_ITEM(values, i));
    }
    if (r == 0) r = put_bytes(&o, "]]", 2);
    PyObject *result = NULL;
    if (r == 0)
        result = PyUnicode_DecodeUTF8((const char *)o.buf, (Py_ssize_t)o.len, "strict");
    else if (r == 1)
        result = Py_NewRef(Py_None);
    PyMem_Free(o.buf);
    return result;
}

/* --- The store --- */

/* 0 <= t < this: years 1970-9999, where the text below is datetime's (beyond, datetime raises: convert decides). */
#define SQLITE_TIME_END 253402300800.0

/* The SQLite text of epoch seconds t into out[26]; 0, or 1 when convert must decide (see the head comment). */
static int
sqlite_time_text(double t, char out[26])
{
    if (!(t >= 0 && t < SQLITE_TIME_END)) return 1;  /* NaN too */
    const int64_t sec = (int64_t)t;
    const double us_f = nearbyint((t - (double)sec) * 1e6);  /* t - sec is exact; ties to even, as round() */
    if (us_f >= 1e6) return 1;
    const int64_t us = (int64_t)us_f;
    /* days since 1970-01-01 to a civil date (proleptic Gregorian), by 400-year eras counted from 0000-03-01 */
    const int64_t days = sec / 86400, rem = sec % 86400;
    const int64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    const int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    const int64_t y = yoe + era * 400 + (m <= 2);
    const int64_t fields[7] = {y, m, d, rem / 3600, rem / 60 % 60, rem % 60, us};
    static const int widths[7] = {4, 2, 2, 2, 2, 2, 6};
    static const char after[7] = {'-', '-', ' ', ':', ':', '.', 0};
    char *o = out;
    for (int f = 0; f < 7; f++) {
        int64_t v = fields[f];
        for (int k = widths[f] - 1; k >= 0; k--) {
            o[k] = (char)('0' + v % 10);
            v /= 10;
        }
        o += widths[f];
        if (after[f]) *o++ = after[f];
    }
    return 0;
}

/* One time value as SQLite keeps it: a new reference, or NULL with an exception (convert's, or a bad call's). */
static PyObject *
sqlite_value(PyObject *v, PyObject *convert)
{
    if (v == Py_None || PyUnicode_CheckExact(v)) return Py_NewRef(v);
    double t = 0;
    int decided = 1;
    if (PyFloat_CheckExact(v)) {
        t = PyFloat_AS_DOUBLE(v);
        decided = 0;
    }
    else if (PyLong_CheckExact(v)) {
        t = PyLong_AsDouble(v);
        if (t == -1.0 && PyErr_Occurred()) PyErr_Clear();  /* too big for a double: convert says what */
        else decided = 0;
    }
    char text[26];
    if (!decided && sqlite_time_text(t, text) == 0) return PyUnicode_FromStringAndSize(text, 26);
    return PyObject_CallOneArg(convert, v);
}

PyDoc_STRVAR(sqlite_rows_doc,
"sqlite_rows(rows, slots, convert, /)\n--\n\n"
"A list of the tuples in rows with the value at each index in slots as SQLite keeps a time: store.db.sqlite_time's\n"
"text for an exact float or int of epoch seconds in years 1970-9999, None and str as they are, convert(value)\n"
"for anything else.");

static PyObject *
sqlite_rows(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "sqlite_rows takes 3 arguments");
        return NULL;
    }
    PyObject *rows = args[0], *slots = args[1], *convert = args[2];
    if (!PyList_CheckExact(rows) || !PyList_CheckExact(slots) || !PyCallable_Check(convert)) {
        PyErr_SetString(PyExc_TypeError, "sqlite_rows takes a list of tuples, a list of int and a callable");
        return NULL;
    }
    const Py_ssize_t nrows = PyList_GET_SIZE(rows), nslots = PyList_GET_SIZE(slots);
    Py_ssize_t small[8];  /* a table's time columns: 4 at most today */
    Py_ssize_t *at = nslots <= 8 ? small : PyMem_New(Py_ssize_t, (size_t)nslots);
    if (at == NULL) return PyErr_NoMemory();
    PyObject *out = NULL;
    for (Py_ssize_t k = 0; k < nslots; k++) {
        at[k] = PyLong_AsSsize_t(PyList_GET_ITEM(slots, k));
        if (at[k] == -1 && PyErr_Occurred()) goto done;
        if (at[k] < 0) {
            PyErr_SetString(PyExc_IndexError, "sqlite_rows: a negative column index");
            goto done;
        }
    }
    out = PyList_New(nrows);
    if (out == NULL) goto done;
    for (Py_ssize_t r = 0; r < nrows; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyTuple_Check(row)) {
            PyErr_SetString(PyExc_TypeError, "sqlite_rows: a row is not a tuple");
            goto fail;
        }
        const Py_ssize_t n = PyTuple_GET_SIZE(row);
        PyObject *copy = PyTuple_New(n);
        if (copy == NULL) goto fail;
        PyList_SET_ITEM(out, r, copy);
        for (Py_ssize_t i = 0; i < n; i++) PyTuple_SET_ITEM(copy, i, Py_NewRef(PyTuple_GET_ITEM(row, i)));
        for (Py_ssize_t k = 0; k < nslots; k++) {
            if (at[k] >= n) {
                PyErr_SetString(PyExc_IndexError, "sqlite_rows: a time column beyond the row");
                goto fail;
            }
            PyObject *value = sqlite_value(PyTuple_GET_ITEM(row, at[k]), convert);
            if (value == NULL) goto fail;
            PyObject *old = PyTuple_GET_ITEM(copy, at[k]);
            PyTuple_SET_ITEM(copy, at[k], value);
            Py_DECREF(old);
        }
    }
    goto done;
fail:
    Py_CLEAR(out);  /* the rows not reached are NULL, which a list's dealloc skips */
done:
    if (at != small) PyMem_Free(at);
    return out;
}

PyDoc_STRVAR(publish_doc,
"publish(buffer, offset, data, /)\n--\n\n"
"Copy journal bytes (whole records, as encode() frames them) into a writable buffer at offset, the first\n"
"record's length word last, after a release fence: a reader of the same memory (the shipper maps the journal)\n"
"that finds that length nonzero finds every byte of the batch written. The destination must hold zeros there\n"
"(journal space not yet used). Raises ValueError for data shorter than a record's header or that does not fit.");

static PyObject *
publish(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "publish() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]);
    if (offset == -1 && PyErr_Occurred()) return NULL;
    Py_buffer dst, src;
    if (PyObject_GetBuffer(args[0], &dst, PyBUF_WRITABLE) < 0) return NULL;
    if (PyObject_GetBuffer(args[2], &src, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&dst);
        return NULL;
    }
    if (src.len < 8 || offset < 0 || offset > dst.len - src.len) {
        PyErr_Format(PyExc_ValueError, "publish(): %zd bytes do not fit at offset %zd of %zd (or hold no record)",
                     src.len, offset, dst.len);
        PyBuffer_Release(&src);
        PyBuffer_Release(&dst);
        return NULL;
    }
    char *to = (char *)dst.buf + offset;
    const char *from = (const char *)src.buf;
    memcpy(to + 4, from + 4, (size_t)src.len - 4);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(to, from, 4);
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"encode", (PyCFunction)encode, METH_O, encode_doc},
    {"crc32c", (PyCFunction)(void (*)(void))crc32c_py, METH_FASTCALL, crc32c_doc},
    {"crc32c_hardware", (PyCFunction)crc32c_hw_py, METH_NOARGS, crc32c_hw_doc},
    {"decode_payload", (PyCFunction)decode_payload, METH_O, decode_payload_doc},
    {"insert_text", (PyCFunction)(void (*)(void))insert_text, METH_FASTCALL, insert_text_doc},
    {"sqlite_rows", (PyCFunction)(void (*)(void))sqlite_rows, METH_FASTCALL, sqlite_rows_doc},
    {"publish", (PyCFunction)(void (*)(void))publish, METH_FASTCALL, publish_doc},
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
    .m_name = "wardgate.audit._records",
    .m_doc = "Audit records encoded in C: for the journal (wardgate.audit.journal), the chain (wardgate.audit.chain)"
             " and the SQLite store's times (wardgate.store.db).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__records(void)
{
    crc32c_init();
#ifdef HAVE_CRC32C_SSE42
    __builtin_cpu_init();
    crc32c_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
    return PyModuleDef_Init(&module_def);
}
