/**
 * HTTP/1.x stage: in-order TCP bytes of one connection -> Exchange objects.
 *
 * Call order, per connection (as the TCP stage delivers it):
 *   new HttpConnectionParser(opts)
 *   data(dir, buf, ts) / gap(dir, len, ts) / fin(dir, ts)   any number of times, in sequence order per direction
 *   end(ts, reason)                                        exactly once; later calls are ignored
 *
 * Matching: requests queue in the order they are sent and responses match
 * them first-in first-out (RFC 9112 section 9.3.2, pipelining).
 * Exchange.index is 1-based per connection in request order (Zeek's
 * trans_depth, tshark's http.request_number).
 *
 * Timing: requestStart / requestEnd = ts of the data() call carrying the
 * request's first / last byte (last byte = end of the head when there is no
 * body); responseStart = first byte of the first response message (a 1xx
 * interim response counts); responseEnd = last byte of the final response.
 * interim[].ts = first byte of each 1xx.
 *
 * Outcomes (decided when the final response completes, or at end()):
 * - `complete`: the final response's last byte was seen (Content-Length
 *   reached, last chunk and trailers read, no-body status, or, for a body
 *   delimited by the close, the server's FIN). A response that completes
 *   while the request is still being sent (an early 413) is complete too.
 * - `aborted`: the request itself never finished being sent: the connection
 *   ended inside its head or body and no complete response came.
 * - `incomplete-response`: the request was sent, response bytes were seen,
 *   but not the end of the final response (RST, capture end, eviction, or
 *   sync lost inside the response and a later response found).
 * - `no-response`: the request was fully sent and no response byte was seen
 *   before the end.
 * A request whose end was lost in a capture gap counts as sent (not aborted).
 * Exchanges with method '' (see below) are never 'aborted'.
 *
 * Responses with no request waiting (capture began mid-connection, request
 * line unparseable, extra responses): kept as an exchange with method '',
 * target '', version '' (Zeek logs such rows with method "-"), requestStart =
 * responseStart, requestEnd null, and anomaly 'http-response-without-request'.
 * They take the next index, so later requests number one higher than in tshark.
 *
 * HTTP/0.9 (RFC 1945 section 4.1): a request line without version
 * ("GET /path") is version 'HTTP/0.9', with no headers and no body; a
 * response that does not start with "HTTP/" is read as raw body until the
 * close (status null, reason null, responseVersion 'HTTP/0.9'); Zeek logs
 * these as status 0 and the raw length as response_body_len. The same raw
 * reading applies to the first response of a connection whose request was
 * HTTP/1.x (curl --http0.9, curl_http_09.pcap), with anomaly
 * 'http-response-without-status-line'.
 *
 * Tunnels: after 101 Switching Protocols or a 2xx to CONNECT, nothing more is
 * parsed (protocol stays 'http'). Bytes the client sends after a CONNECT or
 * Upgrade request are held (bounded by maxHeaderBytes) until the response
 * says whether a tunnel follows.
 *
 * Gaps: inside a body of known length (Content-Length, chunk data) or a
 * close-delimited body the missing bytes count as body bytes and gapBytes,
 * and parsing stays in sync. Anywhere else (head, chunk-size line, between
 * messages) sync is lost: 'http-gap-lost-sync', then the parser scans for
 * "token SP target SP HTTP/1.d" (requests; the token starts a line or is a
 * standard method, since a pipelined request can follow a binary body
 * directly) or "HTTP/1.d NNN reason" (responses), followed by a header line
 * or the empty line, and counts 'http-resync' when it finds one. Bytes of the
 * gap are attributed to the message they interrupt; a gap on the client side
 * between requests stands for a request that was not seen: it gets a
 * placeholder exchange (method '') so its response pairs with it and later
 * requests keep their index. A gap on the server side between responses is
 * charged to the oldest waiting exchange, which ends 'incomplete-response'
 * when the next status line is found.
 *
 * Not HTTP: TLS (0x16 0x03) or an HTTP/2 preface as first bytes sets
 * protocol 'tls' / 'http2' and stops parsing. Other unrecognised first bytes
 * set 'unknown' and the parser only scans for a start line (a capture that
 * began mid-connection), switching to 'http' when it finds one, and giving
 * up after 256 KiB of such a connection (as Zeek's protocol detection does).
 * No anomaly is counted for connections that are not HTTP.
 *
 * Anomaly names (counted in opts.anomalies, never thrown):
 *   http-parse-error                  a start line, chunk line or chunk CRLF that does not parse; sync lost
 *   http-gap-lost-sync                capture gap where the framing cannot absorb it
 *   http-resync                       a start line found again after sync was lost
 *   http-header-too-large             a head line over maxHeaderBytes (once per message): a field or
 *                                     trailer line is skipped and parsing goes on; a start line, or
 *                                     held bytes over it, lose sync
 *   http-too-many-headers             a message had more than maxHeaders fields (once per message)
 *   http-bad-header-line              header line without a colon, or a fold with nothing to continue (tolerated)
 *   http-bad-content-length           non-numeric or conflicting Content-Length (request: sync lost; response: read until close)
 *   http-bad-transfer-encoding        request Transfer-Encoding whose last coding is not chunked; sync lost
 *   http-te-and-cl                    both Transfer-Encoding and Content-Length (TE wins, RFC 9112 section 6.3)
 *   http-response-without-request     a response with no request waiting
 *   http-response-without-status-line first response is raw bytes although the request was HTTP/1.x
 *   http-exchanges-dropped            exchanges dropped from memory (maxExchanges), by count
 *   http-parser-stuck                 internal safety net; should never appear
 *
 * Memory: bodies are counted, never kept; a head line is held only until it
 * is parsed and at most maxHeaderBytes (a head of any length is read line by
 * line); header values (obs-folds included) are cut to 1024 characters,
 * targets to 8192; at most maxExchanges exchanges are kept (when
 * full the oldest sixteenth is dropped at once; onExchange still sees all).
 * Headers are kept as sent, secrets included: redaction happens at output.
 * Header maps inherit nothing (their prototype chain holds no property, so a
 * field named "constructor" is data): use Object.keys / `in` / JSON, not
 * hasOwnProperty on them.
 * Zeek's response_body_len is the size after Content-Encoding is undone;
 * responseBodyBytes is the size on the wire after de-chunking.
 * After onExchange, request-side fields can still change for an exchange
 * whose response completed before its request did.
 */

export { HttpConnectionParser } from './connection.js';
export type { HttpParserOptions, EndReason } from './connection.js';
export { sniffPayload } from './sniff.js';
