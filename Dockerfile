# mpcd server image: built on Debian bookworm, run on a slim bookworm with only the runtime
# libraries, as an unprivileged user. docs/operations.md explains running and sizing it.
#
#   podman build --format=docker --network=host -t localhost/mpcd:dev .            # CPU (default)
#   podman build --format=docker --network=host --build-arg VARIANT=cuda -t localhost/mpcd:cuda .
#   podman run --rm --network=host -e MPCD_PORT=50051 localhost/mpcd:dev [--more_mpcd_flags]
#   (`docker build`/`docker run` take the same arguments.)
#
# --format=docker keeps the HEALTHCHECK (the OCI image format has no field for it).
#
# VARIANT=cuda copies the CUDA toolkit (/usr/local/cuda) out of CUDA_IMAGE into the builder and
# builds with -DMPCD_WITH_CUDA=ON. The runtime stays Debian: the CUDA runtime is linked statically
# (cudart_static), and the NVIDIA container toolkit mounts the driver (libcuda) into the container;
# any shared CUDA library the binaries do need is copied from the builder.

ARG VARIANT=cpu
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
ARG CUDA_IMAGE=docker.io/nvidia/cuda:13.0.0-devel-ubuntu24.04

FROM ${BASE_IMAGE} AS builder-base
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake ninja-build g++ pkg-config \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev \
      libeigen3-dev prometheus-cpp-dev grpc-proto \
    && rm -rf /var/lib/apt/lists/*

FROM ${CUDA_IMAGE} AS cuda-toolkit

FROM builder-base AS builder-cpu
ENV MPCD_WITH_CUDA=OFF

FROM builder-base AS builder-cuda
COPY --from=cuda-toolkit /usr/local/cuda/ /usr/local/cuda/
# Debian's CMake 3.25 FindCUDAToolkit fails ("could not find TARGET CUDA::nvToolsExt") with a
# toolkit that no longer ships libnvToolsExt (CUDA 13); later CMake releases guard the line, and
# so does this (a no-op where the line is not there).
RUN sed -i 's/^    if(CMAKE_MINIMUM_REQUIRED_VERSION VERSION_GREATER_EQUAL 3.25)$/    if(TARGET CUDA::nvToolsExt AND CMAKE_MINIMUM_REQUIRED_VERSION VERSION_GREATER_EQUAL 3.25)/' \
      /usr/share/cmake-*/Modules/FindCUDAToolkit.cmake
ENV MPCD_WITH_CUDA=ON

FROM builder-${VARIANT} AS builder
# x86-64-v3 (AVX2, FMA) is what the benchmarks assume; x86-64-v2 runs on older hosts.
ARG MPCD_MARCH=x86-64-v3
ARG CUDA_ARCHITECTURES=90
# The git revision mpcd --version and mpcd_build_info report (the build context has no .git):
# --build-arg MPCD_REVISION=$(git rev-parse --short=12 HEAD); "unknown" without it.
ARG MPCD_REVISION=unknown
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY common common
COPY proto proto
COPY solver solver
COPY server server
COPY client client
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMPCD_WITH_CUDA="${MPCD_WITH_CUDA}" \
      -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES}" -DMPCD_MARCH="${MPCD_MARCH}" \
      -DMPCD_BUILD_TESTS=OFF -DMPCD_BUILD_BENCHMARKS=OFF -DMPCD_REVISION="${MPCD_REVISION}" \
    && cmake --build build -j"$(nproc)" --target mpcd mpcctl \
    && mkdir -p /out/bin /out/lib \
    && cp build/bin/mpcd build/bin/mpcctl /out/bin/ \
    && { ldd build/bin/mpcd | awk '$3 ~ "^/usr/local/cuda" {print $3}' \
         | xargs -r cp -L -t /out/lib/; }

FROM ${BASE_IMAGE} AS runtime-cpu
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libprometheus-cpp-core1.0 \
      libprometheus-cpp-pull1.0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin mpcd

FROM runtime-cpu AS runtime-cuda
# Read by the NVIDIA container toolkit: which GPUs to expose and which driver libraries to mount.
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility

FROM runtime-${VARIANT}
COPY --from=builder /out/ /usr/local/
RUN ldconfig
COPY deploy/mpcd.flags /etc/mpcd/mpcd.flags
# One variable sets the gRPC port for both the server and the health check.
ENV MPCD_PORT=50051
USER 10001:10001
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/bin/sh", "-c", "exec /usr/local/bin/mpcctl health --target=127.0.0.1:${MPCD_PORT} --timeout=2"]
# exec: mpcd is PID 1 and gets SIGTERM itself (it drains, then exits 0). Arguments given to
# `run` are appended as further mpcd flags.
ENTRYPOINT ["/bin/sh", "-c", "exec /usr/local/bin/mpcd --flagfile=/etc/mpcd/mpcd.flags --port=\"${MPCD_PORT}\" \"$@\"", "mpcd"]
