# faro's image: the store side (materializer, query API and UI) and PyFlink for the
# example jobs in jobs/. docker-compose.yml runs it; alone: `docker build -t faro .`.
FROM python:3.11-slim-bookworm

# PyFlink runs the operators in a JVM: Java 17, the version faro is tested with.
# (man1 must exist for the JRE's alternatives on slim images.)
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY faro ./faro
# No spark extra: Spark jobs run on your Spark cluster and only need `faro[spark,kafka]` there.
RUN pip install --no-cache-dir '.[kafka,api,flink,otel]'
COPY jobs ./jobs

ENV FARO_LOCAL_PATH=/data
VOLUME /data
EXPOSE 9000
CMD ["faro", "--help"]
