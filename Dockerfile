# mpcd server image: build on Debian bookworm, run on a slim bookworm with only the runtime libraries.
#   podman build --network=host -t localhost/mpcd:dev .
#   podman run --rm --network=host localhost/mpcd:dev --port=50051
# (A CUDA runtime variant arrives with the CUDA backend.)
FROM docker.io/library/debian:bookworm-slim AS builder
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake ninja-build g++ make pkg-config \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev \
      libeigen3-dev prometheus-cpp-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY proto proto
COPY solver solver
COPY server server
COPY client client
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMPCD_WITH_CUDA=OFF \
      -DMPCD_BUILD_TESTS=OFF -DMPCD_BUILD_BENCHMARKS=OFF \
    && cmake --build build -j"$(nproc)" --target mpcd mpcctl

FROM docker.io/library/debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libprometheus-cpp-core1.0 \
      libprometheus-cpp-pull1.0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home mpcd
COPY --from=builder /src/build/bin/mpcd /src/build/bin/mpcctl /usr/local/bin/
COPY deploy/mpcd.flags /etc/mpcd/mpcd.flags
USER 10001
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
  CMD ["/usr/local/bin/mpcctl", "health", "--target=127.0.0.1:50051"]
ENTRYPOINT ["/usr/local/bin/mpcd", "--flagfile=/etc/mpcd/mpcd.flags"]
