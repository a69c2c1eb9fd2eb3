# hangscope in a container: for `kubectl debug` beside a server pod (README, "In Kubernetes").
#
#   docker build -t hangscope .
#   docker run --rm --net=host --cap-add NET_RAW --cap-add NET_ADMIN hangscope watch --port 8000
#
# The Debian packages come from scripts/install-system-deps.sh, the script test/run.sh (CI) runs,
# in its --runtime mode (tcpdump, libpcap, bpftrace, iproute2): what CI checks is what the image holds.

# Build: TypeScript needs the dev dependencies; the runtime stage gets only the production ones.
FROM node:20-bookworm-slim AS build
WORKDIR /opt/hangscope
COPY package.json package-lock.json tsconfig.json ./
# --ignore-scripts: no `prepare` before the sources are here, and no attempt to compile the optional
# libpcap binding (npm pcap) without a compiler; tcpdump is watch's source in the image.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY bin ./bin
COPY lib ./lib
COPY cli ./cli
COPY dashboards ./dashboards
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /opt/hangscope
COPY scripts/install-system-deps.sh ./scripts/install-system-deps.sh
RUN bash scripts/install-system-deps.sh --runtime && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/hangscope/package.json /opt/hangscope/package-lock.json ./
COPY --from=build /opt/hangscope/node_modules ./node_modules
COPY --from=build /opt/hangscope/dist ./dist
COPY --from=build /opt/hangscope/bin ./bin
COPY README.md ./
COPY docs ./docs
RUN ln -s /opt/hangscope/bin/hangscope.js /usr/local/bin/hangscope && hangscope --version
ENTRYPOINT ["hangscope"]
CMD ["--help"]
