/*
 * wardgate.masking._prefilter: the result-masking prefilter in one pass over a buffer.
 *
 * It answers exactly what wardgate.masking.detectors.Prefilter.may_match answers for a set of built-in detectors:
 * "does the buffer hold a trigger substring of any of them?" (see _TRIGGERS there). The reference runs one regex
 * over the raw bytes, translates the whole buffer into byte classes and runs another regex plus two substring
 * searches over that: several passes and a copy, about 3 ms on the 110 KB of 1,000 DataRows. Here the buffer is
 * read once, and only a few kinds of byte make the loop stop:
 *
 *   digits        every class trigger (IBAN, card, SSN, NANP and "(999)" phones, IPv4) and E.164's "+[1-9]" is
 *                 a statement about one run of digits and a few bytes around it, so the loop takes a whole run
 *                 at once and checks those bytes (bounded lookbehind/lookahead in the raw buffer: "is a digit"
 *                 in the raw bytes is "is 9" in the class translation, so no translated copy is needed);
 *   @ :           e-mail (the byte before the @), IPv6 ("::" or ":h:h:h:" from the colon on);
 *   J I V _ -     the last or a middle byte of the literal raw triggers (eyJ, A[KS]IA, PRIVATE KEY, gh?_,
 *                 github_pat_, k_live_, xox?-), chosen because they are rare in ordinary text.
 *
 * Every other byte costs one table lookup. Which bytes stop the loop depends on the chosen detectors (a table of
 * detector bits per byte, masked with the caller's set), so a scanner without digit detectors skips digits.
 *
 * That loop, scan(), lives in _prefilter_core.h, which _bulk.c includes too (its candidates() asks the same
 * question of each value of a column in one call); this file is the may_match() entry point around it.
 *
 * Equality with the reference is the contract; tests/unit/test_prefilter_native.py checks it by property tests.
 * If _TRIGGERS changes, _prefilter_core.h must change with it (the tests pin the triggers' text to notice).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_prefilter_core.h"  /* scan() and its tables: the matching core, shared with _bulk.c */

static const char *const ORDER[D_COUNT] = {
    "pem_private_key", "jwt", "aws_access_key", "github_token", "stripe_key", "slack_token", "email",
    "iban", "credit_card", "ssn", "phone", "ipv6", "ipv4",
};

/* Buffers from this size on are scanned without the GIL: long enough that other threads gain more than the
   release and re-acquire cost. */
#define NOGIL_FROM (64 * 1024)

PyDoc_STRVAR(may_match_doc,
"may_match(buf, detectors, /)\n--\n\n"
"True iff wardgate.masking.detectors.Prefilter for the built-in detectors whose bits are set in detectors\n"
"(bit i is ORDER[i]) answers True for buf (bytes, bytearray or any C-contiguous buffer). False for no bits.");

static PyObject *
may_match(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "may_match() takes exactly 2 arguments (%zd given)", nargs);
        return NULL;
    }
    unsigned det;
    if (detector_bits(args[1], "may_match", 0, &det) != 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) != 0) return NULL;
    int found = 0;
    if (det != 0 && view.len > 0) {
        if (view.len >= NOGIL_FROM) {
            Py_BEGIN_ALLOW_THREADS
            found = scan((const uint8_t *)view.buf, view.len, det);
            Py_END_ALLOW_THREADS
        }
        else {
            found = scan((const uint8_t *)view.buf, view.len, det);
        }
    }
    PyBuffer_Release(&view);
    return PyBool_FromLong(found);
}

static PyMethodDef methods[] = {
    {"may_match", (PyCFunction)(void (*)(void))may_match, METH_FASTCALL, may_match_doc},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *module)
{
    PyObject *order = PyTuple_New(D_COUNT);
    if (order == NULL) return -1;
    for (Py_ssize_t k = 0; k < D_COUNT; k++) {
        PyObject *name = PyUnicode_FromString(ORDER[k]);
        if (name == NULL) {
            Py_DECREF(order);
            return -1;
        }
        PyTuple_SET_ITEM(order, k, name);
    }
    if (PyModule_AddObject(module, "ORDER", order) != 0) {
        Py_DECREF(order);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wardgate.masking._prefilter",
    .m_doc = "The result-masking prefilter of wardgate.masking.detectors.Prefilter, for built-in detectors, in one "
             "pass in C.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__prefilter(void)
{
    return PyModuleDef_Init(&module_def);
}
