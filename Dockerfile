# One image runs both `mailrelay operator` and `mailrelay relay` (the operator gives relays
# whose MailRelay names no image its own). It holds the compiled CLI (dist/, `npm run build`),
# the production dependencies and nothing else: no TypeScript, no tests, no dev dependencies.
#
# The runtime is distroless Node.js: no shell, no package manager, and the "nonroot" user
# (uid/gid 65532) the pod specs run as. Node lives at /nodejs/bin/node there; the relay
# pods' preStop hook calls that path (operator/desired/layout.ts, MAILRELAY_CLI).
#
# Build (docs/image.md; scripts/build-image.sh does this with buildah, and without a registry):
#   docker build --build-arg VERSION=$(node -p "require('./package.json').version") \
#     -t ghcr.io/mailrelay/mailrelay:$(node -p "require('./package.json').version") .
# Behind a TLS-inspecting proxy, give npm its CA: --secret id=npm-ca,src=/path/ca.pem
#
#   docker run --rm IMAGE relay --config /path/relay.yaml
#   docker run --rm IMAGE operator --help

# The base images are arguments so that a machine without registry access can build
# against local copies of the same layout (scripts/image/build-bases.sh).
ARG BUILD_IMAGE=docker.io/library/node:20-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Every dependency, dev ones included: tsc compiles against the type packages. No install
# scripts: the only package that has one (esbuild, under tsx) is not used here.
RUN --mount=type=cache,id=mailrelay-npm,target=/root/.npm \
    --mount=type=secret,id=npm-ca \
    if [ -f /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi; \
    npm ci --ignore-scripts --no-audit --no-fund --prefer-offline
COPY tsconfig.json tsconfig.build.json ./
COPY bin/mailrelay.mjs ./bin/
COPY relay ./relay
COPY operator ./operator
# Compile, then drop the dev dependencies from node_modules and package.json: what is left
# is what ships (and `npm sbom` in the image lists exactly the installed tree). Type
# declarations and source maps are never loaded at run time: a fifth of the image. /app is
# assembled here so that the runtime stage adds it as one layer.
RUN npm run build \
 && rm dist/.tsbuildinfo \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm pkg delete devDependencies scripts \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -exec rm -f {} + \
 && mkdir -p /out/app \
 && cp -a package.json bin dist node_modules /out/app/

FROM ${RUNTIME_IMAGE}
# The version `mailrelay --version` prints (package.json's); scripts/build-image.sh passes
# it, and an image built without it says "unknown" rather than a wrong number.
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mailrelay" \
      org.opencontainers.image.description="Kubernetes operator for managed outbound mail relays, and the relay" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/mailrelay/mailrelay" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
# Root-owned and read-only to the process, which writes only to its volumes (the spool,
# /tmp) under a read-only root filesystem.
COPY --from=build /out/app /app
WORKDIR /app
# `mailrelay` on PATH for `kubectl exec POD -- mailrelay queue ...` (no shell in the image).
COPY --chown=0:0 --chmod=0755 bin/image/mailrelay /usr/local/bin/mailrelay
USER 65532:65532
# 2525 SMTP and 9090 metrics/health/drain (relay); 8080 metrics/health (operator).
EXPOSE 2525 9090 8080
ENTRYPOINT ["/nodejs/bin/node", "/app/bin/mailrelay.mjs"]
CMD ["--help"]
