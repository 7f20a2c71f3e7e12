"""Builds the mpcd package with its gRPC stubs generated from the repository's proto files.

Everything else is in pyproject.toml. Stubs go into the build tree (never the source tree):
  mpcd/v1/mpcd_pb2.py, mpcd/v1/mpcd_pb2_grpc.py   from <repo>/proto/mpcd/v1/mpcd.proto
  mpcd/grpc/health/v1/health_pb2.py               from grpc/health/v1/health.proto (messages only)
  mpcd/google/rpc/status_pb2.py, error_details_pb2.py  from <repo>/proto/google/rpc/ (error details)
Environment: MPCD_PROTO_DIR (default <repo>/proto), MPCD_GRPC_PROTO_DIR (default
/usr/share/grpc-proto), PROTOC (default protoc on PATH), GRPC_PYTHON_PLUGIN (default
grpc_python_plugin on PATH).
"""

import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def _tool(env, name):
    path = os.environ.get(env) or shutil.which(name)
    if not path:
        raise RuntimeError("mpcd: %s not found (set %s); on Debian: apt-get install "
                           "protobuf-compiler protobuf-compiler-grpc" % (name, env))
    return path


class BuildWithStubs(build_py):
    """build_py, then protoc into build_lib."""

    def run(self):
        super().run()
        proto_dir = os.environ.get("MPCD_PROTO_DIR",
                                   os.path.join(HERE, os.pardir, os.pardir, "proto"))
        grpc_proto_dir = os.environ.get("MPCD_GRPC_PROTO_DIR", "/usr/share/grpc-proto")
        proto = os.path.join(proto_dir, "mpcd", "v1", "mpcd.proto")
        health = os.path.join(grpc_proto_dir, "grpc", "health", "v1", "health.proto")
        rpc = [os.path.join(proto_dir, "google", "rpc", name)
               for name in ("status.proto", "error_details.proto")]
        for path in [proto, health] + rpc:
            if not os.path.isfile(path):
                raise RuntimeError("mpcd: %s not found (set MPCD_PROTO_DIR / MPCD_GRPC_PROTO_DIR)"
                                   % path)
        protoc = _tool("PROTOC", "protoc")
        plugin = _tool("GRPC_PYTHON_PLUGIN", "grpc_python_plugin")
        out = self.build_lib
        subprocess.check_call([protoc, "--proto_path=" + proto_dir, "--python_out=" + out,
                               "--grpc_python_out=" + out,
                               "--plugin=protoc-gen-grpc_python=" + plugin, proto])
        package = os.path.join(out, "mpcd")
        subprocess.check_call([protoc, "--proto_path=" + grpc_proto_dir,
                               "--python_out=" + package, health])
        subprocess.check_call([protoc, "--proto_path=" + proto_dir, "--python_out=" + package]
                              + rpc)
        # Regular packages, so that the installed tree needs no path tricks.
        for sub in ("v1", "grpc", os.path.join("grpc", "health"),
                    os.path.join("grpc", "health", "v1"), "google",
                    os.path.join("google", "rpc")):
            open(os.path.join(package, sub, "__init__.py"), "a").close()


setup(cmdclass={"build_py": BuildWithStubs})
