"""Vault benchmark: unlock time, and load/save time for 100, 1,000 and 10,000 tokens.

Each save is printed beside its floor: ChaCha20-Poly1305 encryption of the same number of
bytes + writing them to a new file + fsync, nothing else. Target: a save of 10,000 tokens
within 3x of that floor. A "save" is one ``put`` into an open vault (lock, change check,
encode, encrypt, temp file + fsync, backup link, replace, directory fsync); "save, all
changed" re-encodes every record too. "reload" is a reader picking up another writer's
one-record change (only the changed line is decoded again).

    .venv/bin/python bench/vault_bench.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tokenguard.permissions import AccountGroup, Permission, ResourceGrant, ResourceType, Scope
from tokenguard.secrets import Secret
from tokenguard.vault import TokenRecord, TokenStatus, Unlocker, Vault, kdf

SIZES = (100, 1_000, 10_000)
TARGET_RATIO = 3.0


def _median(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _record(i: int) -> TokenRecord:
    created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i)
    return TokenRecord(
        name=f"policy{i % 50}.{i}",
        secret=Secret(f"apify_api_{i:036d}"),
        status=TokenStatus.ACTIVE,
        policy=f"policy{i % 50}",
        scope=Scope(
            account={AccountGroup.STORAGES: frozenset({Permission.READ})},
            resources=(
                ResourceGrant(ResourceType.ACTOR, f"actor{i:08d}", frozenset({Permission.RUN})),
                ResourceGrant(ResourceType.DATASET, f"ds{i:08d}", frozenset({Permission.WRITE})),
            ),
        ),
        created_at=created,
        expires_at=created + timedelta(days=90),
        issuer_id=f"tok{i:012d}",
        policy_digest=f"sha256:{i:064x}",
        notes="benchmark token",
    )


def _floor_once(directory: Path, size: int) -> Callable[[], float]:
    """A timed run of the floor: AEAD-encrypt ``size`` bytes, write a new file, fsync it."""
    key = ChaCha20Poly1305.generate_key()
    data = os.urandom(size)
    counter = iter(range(1_000_000))

    def once() -> float:
        path = directory / f"floor-{next(counter)}"
        start = time.perf_counter()
        sealed = ChaCha20Poly1305(key).encrypt(os.urandom(12), data, b"header")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, sealed)
            os.fsync(fd)
        finally:
            os.close(fd)
        elapsed = time.perf_counter() - start
        os.unlink(path)  # cleanup is not part of the floor
        return elapsed

    return once


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tg-vault-bench-") as tmp:
        root = Path(tmp)
        os.environ["XDG_STATE_HOME"] = str(root / "state")
        key = root / "key"
        passphrase = Secret("benchmark passphrase")
        small = root / "small" / "vault.tgv"
        Vault.init(small, key_file=key, passphrase=passphrase)
        unlock_pp = _median(lambda: Vault.open(small, unlocker=Unlocker(passphrase=passphrase)), 5)
        unlock_key = _median(lambda: Vault.open(small, unlocker=Unlocker(key_file=key)), 50)
        print("unlock (empty vault)")
        a2 = kdf.DEFAULT_ARGON2
        label = (
            f"passphrase (Argon2id m={a2.memory_kib // 1024} MiB t={a2.iterations} p={a2.lanes}):"
        )
        print(f"  {label:<40}{unlock_pp * 1000:8.1f} ms")
        print(f"  {'key file (HKDF):':<40}{unlock_key * 1000:8.2f} ms")
        print()
        header = (
            f"{'tokens':>7} {'file KiB':>9} {'load ms':>8} {'save ms':>8} {'floor ms':>9} "
            f"{'save/floor':>10} {'save all ms':>12} {'all/floor':>9} {'reload ms':>9}"
        )
        print(header)
        print("-" * len(header))
        verdict = []
        for n in SIZES:
            path = root / f"v{n}" / "vault.tgv"
            vault = Vault.init(path, key_file=key)
            vault.update(lambda d, n=n: d.update({r.name: r for r in map(_record, range(n))}))
            size = path.stat().st_size
            runs = 25 if n < 10_000 else 15
            load = _median(lambda path=path: Vault.open(path, unlocker=Unlocker(key_file=key)), 5)
            vault = Vault.open(path, unlocker=Unlocker(key_file=key))
            counter = iter(range(1_000_000))
            # Save and floor alternate, so both see the same background load.
            floor_once = _floor_once(root, size)
            save_times, floor_times = [], []
            for _ in range(runs):
                edited = _record(0).evolve(notes=f"edit {next(counter)}")
                start = time.perf_counter()
                vault.put(edited)
                save_times.append(time.perf_counter() - start)
                floor_times.append(floor_once())
            save, floor = statistics.median(save_times), statistics.median(floor_times)

            def save_all(vault: Vault = vault, counter: object = counter) -> None:
                tag = f"all {next(counter)}"  # type: ignore[call-overload]
                vault.update(lambda d: d.update({k: r.evolve(notes=tag) for k, r in d.items()}))

            save_all_t = _median(save_all, 5)
            reader = Vault.open(path, unlocker=Unlocker(key_file=key))
            reload_times: list[float] = []
            for i in range(5):
                vault.put(_record(1).evolve(notes=f"reload {i}"))
                start = time.perf_counter()
                assert reader.reload()
                reload_times.append(time.perf_counter() - start)
            reload_t = statistics.median(reload_times)
            ratio = save / floor
            print(
                f"{n:>7} {size / 1024:>9.0f} {load * 1000:>8.1f} {save * 1000:>8.1f} "
                f"{floor * 1000:>9.2f} {ratio:>9.2f}x {save_all_t * 1000:>12.1f} "
                f"{save_all_t / floor:>8.2f}x {reload_t * 1000:>9.1f}"
            )
            if n == 10_000:
                verdict.append(ratio)
        print()
        ok = all(r <= TARGET_RATIO for r in verdict)
        print(
            f"target: save of 10,000 tokens within {TARGET_RATIO:.0f}x of the floor -> "
            f"{verdict[0]:.2f}x {'OK' if ok else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
