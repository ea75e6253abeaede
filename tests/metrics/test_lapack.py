"""metrics._lapack: the GIL-free LAPACK calls give scipy's results to the bit and let other threads run."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import scipy.linalg

from metrics import _lapack


@pytest.fixture(params=["ctypes", "scipy fallback"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on the GIL-free path and on the fallback a scipy with another LAPACK signature gets."""
    if request.param == "scipy fallback":

        def unsupported(name: str) -> None:
            raise _lapack.Unsupported(name)

        monkeypatch.setattr(_lapack, "_routine", unsupported)
    return str(request.param)


def _spd(n: int, seed: int = 0) -> np.ndarray:
    """A symmetric positive definite n×n matrix whose upper triangle differs from its lower one in the last bits
    (as a down-dated Gram's can): the functions must read the lower triangle only, as scipy's calls do."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n + 5, n))
    matrix = a.T @ a + np.eye(n)
    matrix[np.triu_indices(n, 1)] *= 1.0 + 1e-12
    return matrix


@pytest.mark.parametrize("n", [1, 2, 7, 130])
def test_cholesky_solve_equals_scipys_cho_factor_and_cho_solve_to_the_bit(n, path):
    matrix, rhs = _spd(n), np.random.default_rng(1).normal(size=(n, 4))
    before = (matrix.copy(), rhs.copy())
    want = scipy.linalg.cho_solve(scipy.linalg.cho_factor(matrix, lower=True), rhs)
    got = _lapack.cholesky_solve(matrix, rhs)
    assert np.array_equal(got, want)
    assert np.array_equal(matrix, before[0]) and np.array_equal(rhs, before[1])


def test_cholesky_solve_of_a_matrix_that_is_not_positive_definite_raises_linalgerror(path):
    matrix = _spd(5)
    matrix[2, 2] = -1.0
    with pytest.raises(np.linalg.LinAlgError, match="3-th leading minor .*not positive definite"):
        _lapack.cholesky_solve(matrix, np.ones((5, 1)))


@pytest.mark.parametrize(("n", "count"), [(1, 1), (5, 5), (40, 3), (200, 64)])
def test_top_eigenpairs_equal_scipys_subset_eigh_to_the_bit(n, count, path):
    matrix = _spd(n, seed=2)
    before = matrix.copy()
    want_values, want_vectors = scipy.linalg.eigh(matrix, subset_by_index=[n - count, n - 1], driver="evr")
    values, vectors = _lapack.top_eigenpairs(matrix, count)
    assert np.array_equal(values, want_values) and np.array_equal(vectors, want_vectors)
    assert vectors.flags.c_contiguous and np.array_equal(matrix, before)


def test_top_eigenpairs_rejects_a_count_the_matrix_cannot_have():
    with pytest.raises(ValueError, match="3 eigenpairs of a"):
        _lapack.top_eigenpairs(np.eye(2), 3)


@pytest.mark.parametrize("n", [2, 9, 150])
def test_tridiagonal_spectrum_equals_scipys_reduction_and_tridiagonal_eigh_to_the_bit(n, path):
    matrix, columns = _spd(n, seed=3), np.random.default_rng(4).normal(size=(n, 6))
    before = (matrix.copy(), columns.copy())
    reflectors, diagonal, off_diagonal, tau, info = scipy.linalg.lapack.dsytrd(matrix, lower=1, lwork=64 * n)
    assert info == 0
    rotated = np.array(columns, order="F")
    rotated[1:] = scipy.linalg.lapack.dormqr("L", "T", reflectors[1:, :-1], tau, rotated[1:], lwork=64 * 6)[0]
    want_values, z = scipy.linalg.eigh_tridiagonal(diagonal, off_diagonal)
    values, projections = _lapack.tridiagonal_spectrum(matrix, columns)
    assert np.array_equal(values, want_values) and np.array_equal(projections, z.T @ rotated)
    assert np.array_equal(matrix, before[0]) and np.array_equal(columns, before[1])


@pytest.mark.parametrize("n", [1, 60])
def test_tridiagonal_spectrum_is_the_eigendecomposition_to_rounding(n, path):
    matrix, columns = _spd(n, seed=5), np.random.default_rng(6).normal(size=(n, 3))
    values, vectors = np.linalg.eigh(matrix)
    got_values, projections = _lapack.tridiagonal_spectrum(matrix, columns)
    np.testing.assert_allclose(got_values, values, rtol=1e-12)
    # each eigenvector is defined up to its sign
    np.testing.assert_allclose(np.abs(projections), np.abs(vectors.T @ columns), rtol=1e-8, atol=1e-10)


def test_a_signature_other_than_the_one_passed_is_refused_not_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scipy whose LAPACK takes 64-bit integers would read garbage from our 32-bit ones: such a routine is
    refused by its C signature (the functions then fall back to scipy's wrappers, tested above)."""
    import ctypes

    assert _lapack._routine("dpotrf") is _lapack._routine(
        "dpotrf"
    )  # this scipy's signature is the expected one
    real = _lapack.cython_lapack.__pyx_capi__["dpotrf"]
    name = ctypes.c_char_p(b"void (char *, npy_int64 *, double *, npy_int64 *, npy_int64 *)")
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    address = _lapack._capsule_pointer(real, _lapack._capsule_name(real))
    capsules = {"dpotrf": new_capsule(address, name, None)}  # what a differently built scipy would export
    _lapack._routine.cache_clear()
    monkeypatch.setattr(_lapack.cython_lapack, "__pyx_capi__", capsules)
    try:
        with pytest.raises(_lapack.Unsupported, match="npy_int64"):
            _lapack._routine("dpotrf")
    finally:
        _lapack._routine.cache_clear()


def test_a_long_lapack_call_lets_other_python_threads_run_meanwhile():
    """While one thread is inside LAPACK, another thread keeps executing Python (the reason the module exists)."""
    matrix = _spd(1200, seed=7)
    ticks: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        time.sleep(0.01)
        start = time.perf_counter()
        _lapack.top_eigenpairs(matrix, 1200)
        end = time.perf_counter()
    finally:
        stop.set()
        thread.join()
    # the middle half of the call, away from the Python code around it: a call holding the GIL shows no tick there
    middle = [t for t in ticks if start + 0.25 * (end - start) < t < start + 0.75 * (end - start)]
    assert len(middle) >= 3, f"{len(middle)} ticks during a {end - start:.3f} s call"
