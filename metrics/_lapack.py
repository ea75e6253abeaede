"""LAPACK calls that release the GIL: the few factorisations the bootstrap's fast paths repeat hundreds of times.

scipy's wrappers (``scipy.linalg.eigh``, ``cho_factor``, ``cho_solve``, ``scipy.linalg.lapack.*``) hold the GIL for
the whole LAPACK call. Measured on 2 cores: two threads running ``eigh(subset_by_index=...)`` of a 768×768 matrix
take as long as running them one after the other (0.98× the serial time), while a numpy product runs 1.8× faster.
The bootstrap runs its single-threaded units in a thread pool (``analyzer/executors/local.py``), so every 20–40 ms
factorisation in one unit stopped the other unit as soon as it next needed the interpreter: LogME's resampled path
held the GIL 52 % of its time, NCTI's 31 %, SFDA's 7 % (measured with a probe thread).

This module calls the same routines of the same LAPACK library that scipy links, through the function pointers
scipy exports for Cython (``scipy.linalg.cython_lapack``), via ctypes, which releases the GIL for the duration of
a foreign call. Arguments (storage order, triangle, workspace sizes) are those scipy's wrappers pass, so each result
equals the scipy call named in its docstring to the bit (``tests/metrics/test_lapack.py``). Every function works on
its own copies: inputs are never modified.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import scipy.linalg
from scipy.linalg import cython_lapack

_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype = ctypes.c_char_p
_capsule_name.argtypes = [ctypes.py_object]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


class Unsupported(Exception):
    """This scipy's LAPACK routine has another signature than the one these calls pass (32-bit integers, doubles,
    characters): a build with 64-bit LAPACK integers, say. Each function then calls scipy's wrapper instead, with
    the GIL held and the same result."""


#: The C types the calls below pass a pointer to; a routine whose signature has any other is :class:`Unsupported`.
_POINTER_TYPES = (b"char *", b"int *")


@cache
def _routine(name: str) -> Callable[..., None]:
    """scipy's Cython-level LAPACK routine ``name`` as a ctypes function of pointers (Fortran passes every argument
    by reference; the capsule's C signature gives their number and types); a ctypes call releases the GIL."""
    capsule = cython_lapack.__pyx_capi__[name]
    signature = _capsule_name(capsule)
    arguments = signature[signature.index(b"(") + 1 : signature.rindex(b")")].split(b", ")
    if not all(a in _POINTER_TYPES or a.endswith(b"_d *") for a in arguments):
        raise Unsupported(f"{name}: {signature.decode(errors='replace')}")
    address = _capsule_pointer(capsule, signature)
    prototype = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(arguments)))
    return prototype(address)


class _Call:
    """The pointer arguments of one Fortran call, kept alive until it returns."""

    def __init__(self) -> None:
        self._keep: list[Any] = []

    def char(self, value: str) -> int:
        return self._scalar(ctypes.c_char(value.encode()))

    def integer(self, value: int) -> int:
        return self._scalar(ctypes.c_int(value))

    def real(self, value: float) -> int:
        return self._scalar(ctypes.c_double(value))

    def array(self, value: np.ndarray) -> int:
        self._keep.append(value)
        return int(value.ctypes.data)

    def _scalar(self, value: Any) -> int:
        self._keep.append(value)
        return ctypes.addressof(value)


def _have(*names: str) -> bool:
    """True when every named routine can be called here (False: this scipy's signature differs, :class:`Unsupported`,
    and the caller uses scipy's wrapper instead)."""
    try:
        for name in names:
            _routine(name)
    except Unsupported:
        return False
    return True


def _check(info: ctypes.c_int | int, routine: str) -> int:
    code = int(info.value if isinstance(info, ctypes.c_int) else info)
    if code < 0:  # a wrong argument: a bug here, never the caller's data
        raise ValueError(f"LAPACK {routine}: illegal value in argument {-code}")
    return code


def _fortran_copy(matrix: np.ndarray) -> np.ndarray:
    """A float64 Fortran-ordered copy: what scipy's wrappers hand to LAPACK for a C-ordered input."""
    return np.array(matrix, dtype=np.float64, order="F", copy=True)


def cholesky_solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``matrix⁻¹·rhs`` for a symmetric positive definite ``matrix`` (D×D, its lower triangle read) and ``rhs`` (D×k):
    ``cho_solve(cho_factor(matrix, lower=True), rhs)`` (LAPACK dpotrf + dpotrs). Returns a D×k float64 array.

    Raises ``np.linalg.LinAlgError`` when ``matrix`` is not positive definite, as scipy does.
    """
    factor = _fortran_copy(matrix)
    solution = _fortran_copy(rhs)
    n, k = solution.shape
    if factor.shape != (n, n):
        raise ValueError(f"cholesky_solve: a {factor.shape} matrix and a {solution.shape} right-hand side")
    if not _have("dpotrf", "dpotrs"):
        lower = scipy.linalg.cho_factor(factor, lower=True, check_finite=False)
        return np.asarray(scipy.linalg.cho_solve(lower, solution, check_finite=False))
    info = ctypes.c_int(0)
    call = _Call()
    _routine("dpotrf")(
        call.char("L"), call.integer(n), call.array(factor), call.integer(max(1, n)), ctypes.addressof(info)
    )
    code = _check(info, "dpotrf")
    if code > 0:
        raise np.linalg.LinAlgError(f"{code}-th leading minor not positive definite")
    _routine("dpotrs")(
        call.char("L"),
        call.integer(n),
        call.integer(k),
        call.array(factor),
        call.integer(max(1, n)),
        call.array(solution),
        call.integer(max(1, n)),
        ctypes.addressof(info),
    )
    _check(info, "dpotrs")
    return solution


def top_eigenpairs(matrix: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest eigenvalues (ascending, shape (count,)) and their eigenvectors (columns, D×count) of a
    symmetric ``matrix`` (D×D, lower triangle read): ``scipy.linalg.eigh(matrix, subset_by_index=[D - count, D - 1],
    driver="evr")`` (LAPACK dsyevr, multiple relatively robust representations, no other eigenvectors formed)."""
    a = _fortran_copy(matrix)
    n = a.shape[0]
    if a.shape != (n, n) or not 1 <= count <= n:
        raise ValueError(f"top_eigenpairs: {count} eigenpairs of a {a.shape} matrix")
    if not _have("dsyevr"):
        values, vectors = scipy.linalg.eigh(a, subset_by_index=[n - count, n - 1], driver="evr")
        return values, np.ascontiguousarray(vectors)
    values = np.zeros(n)
    vectors = np.zeros((n, count), order="F")
    support = np.zeros(2 * max(1, count), dtype=np.intc)
    found, info = ctypes.c_int(0), ctypes.c_int(0)

    def syevr(work: np.ndarray, lwork: int, iwork: np.ndarray, liwork: int) -> None:
        call = _Call()
        _routine("dsyevr")(
            call.char("V"),
            call.char("I"),
            call.char("L"),
            call.integer(n),
            call.array(a),
            call.integer(max(1, n)),
            call.real(0.0),
            call.real(1.0),
            call.integer(n - count + 1),
            call.integer(n),
            call.real(0.0),  # abstol: LAPACK's default accuracy, as scipy passes
            ctypes.addressof(found),
            call.array(values),
            call.array(vectors),
            call.integer(max(1, n)),
            call.array(support),
            call.array(work),
            call.integer(lwork),
            call.array(iwork),
            call.integer(liwork),
            ctypes.addressof(info),
        )

    # the workspace query scipy's eigh makes (syevr_lwork), then the call with the sizes it returned
    query_work, query_iwork = np.zeros(1), np.zeros(1, dtype=np.intc)
    syevr(query_work, -1, query_iwork, -1)
    _check(info, "dsyevr")
    lwork, liwork = _workspace(query_work[0]), int(query_iwork[0])
    syevr(np.zeros(lwork), lwork, np.zeros(liwork, dtype=np.intc), liwork)
    if _check(info, "dsyevr") > 0:
        raise np.linalg.LinAlgError("dsyevr: internal error (the eigenvalue computation did not converge)")
    return values[: found.value].copy(), np.ascontiguousarray(vectors[:, : found.value])


def _workspace(size: float) -> int:
    """A queried workspace size (LAPACK returns it as a double) as the integer scipy passes (``_compute_lwork``)."""
    return max(1, int(size))


def tridiagonal_spectrum(matrix: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (D,), ascending, of a symmetric ``matrix`` (D×D, lower triangle read) and ``Vᵀ·columns``
    (D×k) for its eigenvectors V, without forming V.

    ``matrix = Q T Qᵀ`` (Householder tridiagonalisation, LAPACK dsytrd with a blocked workspace), ``T = Z Λ Zᵀ``
    (divide and conquer, dstevd: ``scipy.linalg.eigh_tridiagonal``), so ``Vᵀ·columns = Zᵀ·(Qᵀ·columns)`` with Qᵀ
    applied to the k columns only (dormtr). ``np.linalg.eigh`` would also multiply Q into Z, a D³ product the caller
    does not need.
    """
    a = _fortran_copy(matrix)
    rotated = _fortran_copy(columns)
    n, k = rotated.shape
    if a.shape != (n, n):
        raise ValueError(f"tridiagonal_spectrum: a {a.shape} matrix and {rotated.shape} columns")
    if not _have("dsytrd", "dormtr", "dstevd"):
        return _tridiagonal_spectrum_with_gil(a, rotated)
    diagonal, off_diagonal, tau = np.zeros(n), np.zeros(max(1, n - 1)), np.zeros(max(1, n - 1))
    info = ctypes.c_int(0)
    lwork = max(1, 64 * n)  # room for LAPACK's blocked reduction (its block size is at most 64 here)
    call = _Call()
    _routine("dsytrd")(
        call.char("L"),
        call.integer(n),
        call.array(a),
        call.integer(max(1, n)),
        call.array(diagonal),
        call.array(off_diagonal),
        call.array(tau),
        call.array(np.zeros(lwork)),
        call.integer(lwork),
        ctypes.addressof(info),
    )
    _check(info, "dsytrd")
    lwork = max(1, 64 * k)
    _routine("dormtr")(
        call.char("L"),
        call.char("L"),
        call.char("T"),
        call.integer(n),
        call.integer(k),
        call.array(a),
        call.integer(max(1, n)),
        call.array(tau),
        call.array(rotated),
        call.integer(max(1, n)),
        call.array(np.zeros(lwork)),
        call.integer(lwork),
        ctypes.addressof(info),
    )
    _check(info, "dormtr")
    vectors = np.zeros((n, n), order="F")
    lwork, liwork = 1 + 4 * n + n * n, 3 + 5 * n  # scipy's dstevd defaults
    _routine("dstevd")(
        call.char("V"),
        call.integer(n),
        call.array(diagonal),
        call.array(off_diagonal),
        call.array(vectors),
        call.integer(max(1, n)),
        call.array(np.zeros(lwork)),
        call.integer(lwork),
        call.array(np.zeros(liwork, dtype=np.intc)),
        call.integer(liwork),
        ctypes.addressof(info),
    )
    if _check(info, "dstevd") > 0:
        raise np.linalg.LinAlgError("dstevd: the tridiagonal eigenvalue computation did not converge")
    return diagonal, vectors.T @ rotated


def _tridiagonal_spectrum_with_gil(a: np.ndarray, rotated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`tridiagonal_spectrum` through scipy's wrappers (the same routines and workspaces; the GIL held)."""
    n, k = rotated.shape
    reflectors, diagonal, off_diagonal, tau, info = scipy.linalg.lapack.dsytrd(
        a, lower=1, lwork=max(1, 64 * n)
    )
    _check(info, "dsytrd")
    if n > 1:
        below, _, info = scipy.linalg.lapack.dormqr(
            "L", "T", reflectors[1:, :-1], tau, rotated[1:], lwork=max(1, 64 * k)
        )
        _check(info, "dormqr")
        rotated[1:] = below
    values, z = scipy.linalg.eigh_tridiagonal(diagonal, off_diagonal, check_finite=False)
    return values, z.T @ rotated
