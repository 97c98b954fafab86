# One image for the four services; docker-compose.yml picks the binary with `command`.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY services services
COPY migrations migrations
# The collector compiles in the search cluster's index template.
COPY monitoring/opensearch monitoring/opensearch
COPY integration-tests integration-tests
RUN cargo build --release --bins --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 logstream
COPY --from=build /src/target/release/logstream-gateway /src/target/release/logstream-generator \
     /src/target/release/logstream-collector /src/target/release/logstream-ingest \
     /src/target/release/logstream /usr/local/bin/
USER logstream
ENV LOGSTREAM_LOG_FORMAT=json
