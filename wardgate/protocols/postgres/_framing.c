/*
 * wardgate.protocols.postgres._framing: the message-framing loop of FrameReader.feed_runs, in one call.
 *
 * frames(buf, run_type, limit) answers what the Python loop in framing.FrameReader.feed_runs computes (its
 * specification, kept there as _frames_py): the list of whole messages in buf as (type, bytes, count), with
 * consecutive messages of run_type merged into one entry, and the offset after the last whole message. A
 * length below 4 or above limit raises ValueError(type, length), which feed_runs turns into its
 * ProtocolViolation. A relay of large results frames about a thousand DataRows per result: in Python that loop
 * was a third of the gateway's CPU on 1,000-row results; here it is a few nanoseconds per message.
 * Equality with the Python loop is the contract; tests/unit/test_framing_native.py checks it by property tests.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

static inline uint32_t
be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Messages with no body (ParseComplete, BindComplete, CloseComplete, NoData, Sync, Flush, CopyDone, ...) and
 * ReadyForQuery with each transaction status: a third of a short exchange's messages. Their bytes never differ,
 * so each is made once and shared (bytes are immutable): no allocation, copy and free per message. They live in
 * the module's state, so that each interpreter has its own. */
typedef struct {
    PyObject *bodiless[256];
    PyObject *ready[3];  /* 'Z' with status 'I', 'T', 'E' */
} shared_frames;

static PyObject *
shared(shared_frames *st, const uint8_t *m, Py_ssize_t size)
{
    PyObject **slot;
    if (size == 5)
        slot = &st->bodiless[m[0]];
    else if (size == 6 && m[0] == 'Z' && m[4] == 5)
        slot = m[5] == 'I' ? &st->ready[0] : m[5] == 'T' ? &st->ready[1] : m[5] == 'E' ? &st->ready[2] : NULL;
    else
        slot = NULL;
    if (slot == NULL) return PyBytes_FromStringAndSize((const char *)m, size);
    if (*slot == NULL && (*slot = PyBytes_FromStringAndSize((const char *)m, size)) == NULL) return NULL;
    Py_INCREF(*slot);
    return *slot;
}

/* A message that repeats byte for byte (the Parse, Describe and Execute of a statement run again; its
 * RowDescription, CommandComplete and ReadyForQuery) comes back as the entry made for it last time: no tuple,
 * bytes, copy or free per message, and the same bytes object lets the relay reuse what it decoded from it. One
 * entry per message type is kept per reader (the memo, a list the reader owns), for the types that repeat in an
 * exchange and only up to MEMO_BYTES, so what a connection keeps is bounded (16 slots of at most 1 KiB). */
#define MEMO_BYTES 1024
static const char MEMO_KINDS[] = "PDEQCSH123nTZtIs";  /* the client's types, then the server's */
#define MEMO_SLOTS ((int)sizeof MEMO_KINDS - 1)
static uint8_t memo_slot[256];  /* type byte -> slot + 1; 0: not kept. Filled at import. */

/* Append (kind, p[a..b), count) to out; -1 on failure. */
static int
put(shared_frames *st, PyObject *out, long kind, const uint8_t *p, Py_ssize_t a, Py_ssize_t b, Py_ssize_t count,
    PyObject *memo)
{
    Py_ssize_t slot = -1;
    if (memo != NULL && count == 1 && b - a <= MEMO_BYTES && memo_slot[kind] != 0) {
        slot = memo_slot[kind] - 1;
        PyObject *seen = PyList_GET_ITEM(memo, slot);
        if (PyTuple_CheckExact(seen) && PyTuple_GET_SIZE(seen) == 3) {
            PyObject *bytes = PyTuple_GET_ITEM(seen, 1);
            if (PyBytes_CheckExact(bytes) && PyBytes_GET_SIZE(bytes) == b - a &&
                memcmp(PyBytes_AS_STRING(bytes), p + a, (size_t)(b - a)) == 0)
                return PyList_Append(out, seen);
        }
    }
    /* Built by hand: Py_BuildValue parses its format string on every call (~650 instructions a frame). */
    PyObject *item = PyTuple_New(3);
    if (item == NULL) return -1;
    PyObject *k = PyLong_FromLong(kind);  /* a cached small int: the type byte is < 256 */
    PyObject *frame = shared(st, p + a, b - a);
    PyObject *n = PyLong_FromSsize_t(count);
    if (k == NULL || frame == NULL || n == NULL) {
        Py_XDECREF(k);
        Py_XDECREF(frame);
        Py_XDECREF(n);
        Py_DECREF(item);
        return -1;
    }
    PyTuple_SET_ITEM(item, 0, k);
    PyTuple_SET_ITEM(item, 1, frame);
    PyTuple_SET_ITEM(item, 2, n);
    int r = PyList_Append(out, item);
    if (r == 0 && slot >= 0) {
        Py_INCREF(item);
        PyList_SetItem(memo, slot, item);  /* steals the new reference, releases the entry it replaces */
    }
    Py_DECREF(item);
    return r;
}

PyDoc_STRVAR(frames_doc,
"frames(buf, run_type, limit, memo=None, /)\n--\n\n"
"The whole messages in buf (bytes or any C-contiguous buffer) as a list of (type, bytes, count), messages of\n"
"run_type back to back merged into one entry, and the offset after the last whole message. Raises\n"
"ValueError(type, length) for a length below 4 or above limit. memo (a list of memo_slots() entries, owned by\n"
"one reader) makes a message that repeats the last one of its type come back as that same entry.");

static PyObject *
frames(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    shared_frames *st = (shared_frames *)PyModule_GetState(module);
    if (nargs != 3 && nargs != 4) {
        PyErr_Format(PyExc_TypeError, "frames() takes 3 or 4 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *memo = nargs == 4 && args[3] != Py_None ? args[3] : NULL;
    if (memo != NULL && (!PyList_CheckExact(memo) || PyList_GET_SIZE(memo) != MEMO_SLOTS)) {
        PyErr_Format(PyExc_TypeError, "frames(): memo must be a list of %d entries", MEMO_SLOTS);
        return NULL;
    }
    long run_type = PyLong_AsLong(args[1]);
    if (run_type == -1 && PyErr_Occurred()) return NULL;
    long long limit = PyLong_AsLongLong(args[2]);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) != 0) return NULL;
    const uint8_t *p = (const uint8_t *)view.buf;
    const Py_ssize_t end = view.len;
    PyObject *out = PyList_New(0), *result = NULL;
    if (out == NULL) goto done;
    Py_ssize_t pos = 0, run_start = -1, run_count = 0;
    while (end - pos >= 5) {
        uint32_t length = be32(p + pos + 1);
        if (length < 4 || (long long)length > limit) {
            PyObject *exc_args = Py_BuildValue("(lk)", (long)p[pos], (unsigned long)length);
            if (exc_args != NULL) {
                PyErr_SetObject(PyExc_ValueError, exc_args);
                Py_DECREF(exc_args);
            }
            goto done;
        }
        Py_ssize_t stop = pos + 1 + (Py_ssize_t)length;
        if (stop > end) break;
        long kind = p[pos];
        if (kind == run_type) {
            if (run_start < 0) run_start = pos;
            run_count++;
        }
        else {
            if (run_start >= 0) {
                if (put(st, out, run_type, p, run_start, pos, run_count, NULL) != 0) goto done;
                run_start = -1;
                run_count = 0;
            }
            if (put(st, out, kind, p, pos, stop, 1, memo) != 0) goto done;
        }
        pos = stop;
    }
    if (run_start >= 0 && put(st, out, run_type, p, run_start, pos, run_count, NULL) != 0) goto done;
    PyObject *end_pos = PyLong_FromSsize_t(pos);  /* the pair by hand, as in put() */
    if (end_pos == NULL || (result = PyTuple_New(2)) == NULL) {
        Py_XDECREF(end_pos);
        goto done;
    }
    Py_INCREF(out);
    PyTuple_SET_ITEM(result, 0, out);
    PyTuple_SET_ITEM(result, 1, end_pos);
done:
    Py_XDECREF(out);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
memo_slots(PyObject *module, PyObject *unused)
{
    return PyLong_FromLong(MEMO_SLOTS);
}

static PyMethodDef methods[] = {
    {"frames", (PyCFunction)(void (*)(void))frames, METH_FASTCALL, frames_doc},
    {"memo_slots", memo_slots, METH_NOARGS, "memo_slots()\n--\n\nThe length of the memo list frames() takes."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static void
free_shared(void *module)
{
    shared_frames *st = (shared_frames *)PyModule_GetState((PyObject *)module);
    if (st == NULL) return;
    for (int i = 0; i < 256; i++) Py_CLEAR(st->bodiless[i]);
    for (int i = 0; i < 3; i++) Py_CLEAR(st->ready[i]);
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wardgate.protocols.postgres._framing",
    .m_doc = "The message-framing loop of wardgate.protocols.postgres.framing.FrameReader.feed_runs, in C.",
    .m_size = sizeof(shared_frames),  /* zeroed by the interpreter */
    .m_methods = methods,
    .m_slots = slots,
    .m_free = free_shared,
};

PyMODINIT_FUNC
PyInit__framing(void)
{
    for (int i = 0; i < MEMO_SLOTS; i++) memo_slot[(uint8_t)MEMO_KINDS[i]] = (uint8_t)(i + 1);
    return PyModuleDef_Init(&module_def);
}
