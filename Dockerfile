# One image runs both `mailrelay operator` and `mailrelay relay` (the operator uses its
# own image for relays whose MailRelay names none). There is no build step: bin/mailrelay.mjs
# loads the TypeScript sources through tsx, a runtime dependency.
#
# The runtime is distroless Node.js: no shell, no package manager, and the "nonroot" user
# (uid/gid 65532) the pod specs run as. Node lives at /nodejs/bin/node there; the relay
# pods' preStop hook calls that path (operator/desired/layout.ts, MAILRELAY_CLI).
#
#   docker build -t ghcr.io/mailrelay/mailrelay:dev .
#   docker run --rm ghcr.io/mailrelay/mailrelay:dev relay --config /path/relay.yaml
#   docker run --rm ghcr.io/mailrelay/mailrelay:dev operator --help

ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM gcr.io/distroless/nodejs${NODE_VERSION}-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps --chown=0:0 /app/node_modules ./node_modules
COPY --chown=0:0 package.json tsconfig.json ./
COPY --chown=0:0 bin ./bin
COPY --chown=0:0 relay ./relay
COPY --chown=0:0 operator ./operator
# `mailrelay` on PATH for `kubectl exec POD -- mailrelay queue ...` (no shell in the image).
COPY --chown=0:0 --chmod=0755 bin/image/mailrelay /usr/local/bin/mailrelay
# Files are root-owned and read-only to the process; it writes only to its volumes
# (spool, /tmp for tsx's compile cache) under a read-only root filesystem.
USER 65532:65532
# 2525 SMTP and 9090 metrics/health/drain (relay); 8080 metrics/health (operator).
EXPOSE 2525 9090 8080
ENTRYPOINT ["/nodejs/bin/node", "/app/bin/mailrelay.mjs"]
CMD ["--help"]
