"""Copies libcria.so into the package being built, so `pip install ./python`
gives a package that needs no source checkout. The library comes from
$CRIA_LIBRARY or ../build/lib (build it first: cmake --build build)."""
import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        here = Path(__file__).resolve().parent
        src = Path(os.environ.get("CRIA_LIBRARY") or here.parent / "build" / "lib" / "libcria.so")
        if not src.exists():
            raise SystemExit(f"cria: {src} not found: build libcria first (cmake --build build) or set CRIA_LIBRARY")
        dst = Path(self.build_lib) / "cria" / "libcria.so"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src.resolve(), dst)  # the real file, not the libcria.so -> .so.0 link


setup(cmdclass={"build_py": BuildWithLibrary})
