# syntax=docker/dockerfile:1.7
#
# The modelctl image. One image, three jobs in every model pod (src/targets/kubernetes/manifests.ts):
#   - init container `fetch-bundle`: `modelctl bundle pull <model>@<digest>` (verifies every byte);
#   - sidecar `meter`: `modelctl kubernetes meter` (takes the traffic, records requests per version);
#   - default serving image: the bundle's serve.command, e.g. `node serve.mjs` (it has Node 24).
# It is also the CLI for CI jobs: `docker run ghcr.io/<owner>/modelctl deploy …`.
#
# Choices:
#   - bookworm-slim, not alpine: bundles' serving code may load native modules built for glibc.
#   - npm ci --ignore-scripts: no dependency needs an install script, and none gets to run one.
#   - dev dependencies (TypeScript, oclif) only in the build stage; the runtime stage copies the
#     pruned node_modules, the compiled dist/src, bin/ and the oclif manifest (fast start-up).
#   - runs as the image's unprivileged `node` user, as uid 1000 (numeric: runAsNonRoot can be
#     verified) — restricted Pod Security works; a pod's emptyDir /pull is writable by it.
#   - MODELCTL_HOME under /tmp: modelctl never needs a writable /app or $HOME.

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
ENV npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts
COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
# scripts/bundle-core.mjs: the build pre-links @oclif/core into dist/src/vendor (start-up speed).
COPY scripts ./scripts
# tsconfig also includes test/ and bench/; they are not copied, so only src/ is compiled.
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts \
 && rm -rf dist/test dist/bench

FROM ${NODE_IMAGE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="modelctl" \
      org.opencontainers.image.description="Ship machine-learning models to production safely: content-addressed bundles, canary and shadow rollouts, instant rollback." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
ENV NODE_ENV=production \
    MODELCTL_HOME=/tmp/modelctl \
    NODE_COMPILE_CACHE=/tmp/node-compile-cache
WORKDIR /app
COPY --from=build --chown=root:root /src/package.json ./package.json
COPY --from=build --chown=root:root /src/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist/src ./dist/src
COPY --from=build --chown=root:root /src/bin ./bin
COPY --from=build --chown=root:root /src/oclif.manifest.json ./oclif.manifest.json
# `modelctl` on PATH: the pod specs call it by name (command: [modelctl, …]).
RUN chmod 0755 /app/bin/run.js \
 && ln -s /app/bin/run.js /usr/local/bin/modelctl \
 && node /app/bin/run.js --version
# Numeric, so that Kubernetes can verify runAsNonRoot (1000 is the image's `node` user).
USER 1000:1000
ENTRYPOINT ["node", "/app/bin/run.js"]
CMD ["--help"]
