/**
 * The HTML report's stylesheet, inlined into the page (the report is one
 * self-contained file: no external CSS, no web fonts, system font stacks only).
 *
 * Waterfall geometry (one row per socket, 52 px): the track's text lane on top
 * (exchange labels), the client's close markers above the bar lane pointing
 * down at it, the bars, the server's close markers below pointing up. Side is
 * told three ways: position (above/below), colour (purple/orange) and the
 * legend; FIN vs RST by shape (triangle vs crossed square).
 */
export const STYLE = String.raw`
:root {
  --fg: #1b1f24; --muted: #5b6470; --faint: #8a929c; --line: #e3e6ea; --bg: #ffffff; --panel: #f6f7f9;
  --error: #c62828; --warning: #b26a00; --info: #3563c9; --ok: #2e7d4f;
  --req: #3563c9; --resp: #2e9a5a; --cut: #d9480f; --wait: #8a929c; --none: #c62828;
  --client: #7b3fe4; --server: #e8590c;
  --lblw: 400px; --rowh: 52px;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--fg); }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial, sans-serif; padding: 18px 24px 80px; }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 15px; margin: 26px 0 8px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
code, .mono { font-family: var(--mono); font-size: 12.5px; }
a { color: var(--info); }
.top { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 14px; border-bottom: 1px solid var(--line); padding-bottom: 10px; }
.top .src { color: var(--muted); }
.top .src b { color: var(--fg); font-weight: 600; }
.secrets { color: var(--muted); font-size: 12.5px; }

/* Verdict: the first thing on the page. */
.verdict { margin-top: 16px; border: 1px solid var(--line); border-left: 6px solid var(--faint); border-radius: 6px; padding: 12px 16px; background: var(--panel); max-width: 1200px; }
.verdict.sev-error { border-left-color: var(--error); background: #fdf3f3; }
.verdict.sev-warning { border-left-color: var(--warning); background: #fdf8ef; }
.verdict.sev-ok { border-left-color: var(--ok); background: #f2f9f4; }
.verdict .vlabel { font-weight: 700; text-transform: uppercase; font-size: 12px; letter-spacing: .06em; color: var(--muted); display: flex; gap: 10px; align-items: center; }
.verdict .headline { font-size: 18px; line-height: 1.4; font-weight: 600; margin: 6px 0 8px; overflow-wrap: anywhere; }
.verdict .advice { margin: 0; font-size: 15px; overflow-wrap: anywhere; }
.verdict .based { margin: 8px 0 0; color: var(--muted); font-size: 12.5px; }
.conf { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 11.5px; letter-spacing: .03em; color: #fff; background: var(--faint); text-transform: none; }
.conf-high { background: #1f6f43; } .conf-medium { background: #8a5a00; } .conf-low { background: #6b7280; }

/* Findings */
table.findings { border-collapse: collapse; width: 100%; max-width: 1600px; }
table.findings th { text-align: left; font-size: 12px; color: var(--muted); font-weight: 600; padding: 4px 8px; border-bottom: 1px solid var(--line); }
table.findings td { padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
table.findings tr[data-conn] { cursor: pointer; }
table.findings tr[data-conn]:hover { background: var(--panel); }
.sev { display: inline-block; min-width: 58px; text-align: center; padding: 1px 6px; border-radius: 4px; font-size: 12px; font-weight: 600; color: #fff; }
.sev-error .sev, .sev.error { background: var(--error); }
.sev.warning { background: var(--warning); }
.sev.info { background: var(--info); }
td.code { font-family: var(--mono); font-size: 12.5px; white-space: nowrap; }
td.summary { overflow-wrap: anywhere; min-width: 280px; }
td.where { white-space: nowrap; font-family: var(--mono); font-size: 12.5px; }
.ev { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 5px; }
.ev span { background: var(--panel); border: 1px solid var(--line); border-radius: 4px; padding: 0 6px; font-size: 12px; font-family: var(--mono); overflow-wrap: anywhere; }
.ev span i { font-style: normal; color: var(--muted); }
.note { color: var(--muted); font-size: 13px; }

/* Waterfall */
.wf-controls { display: flex; flex-wrap: wrap; gap: 8px 22px; align-items: center; margin-bottom: 8px; font-size: 13px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; align-items: center; }
.legend .item { display: inline-flex; align-items: center; gap: 6px; white-space: nowrap; }
.legend .sw { display: inline-block; width: 22px; height: 10px; border-radius: 2px; }
.legend .lm { position: relative; display: inline-block; width: 12px; height: 12px; }
.wf-controls button { font: inherit; font-size: 12.5px; padding: 2px 10px; border: 1px solid #c3c8cf; border-radius: 4px; background: #fff; cursor: pointer; }
.wf-controls button:disabled { opacity: .45; cursor: default; }
.hint { color: var(--faint); font-size: 12.5px; }
.wf { position: relative; border: 1px solid var(--line); border-radius: 6px; min-width: 760px; }
.wf-axis { position: sticky; top: 0; z-index: 5; display: grid; grid-template-columns: var(--lblw) 1fr; background: #fff; border-bottom: 1px solid var(--line); border-radius: 6px 6px 0 0; }
.wf-axis .lbl { padding: 6px 10px; font-size: 12px; color: var(--muted); line-height: 1.3; }
.wf-axis .ticks { position: relative; height: 40px; overflow: hidden; }
.tick { position: absolute; bottom: 4px; transform: translateX(-50%); font-size: 11.5px; font-family: var(--mono); color: var(--muted); white-space: nowrap; }
.tick::after { content: ""; position: absolute; left: 50%; bottom: -4px; height: 4px; border-left: 1px solid var(--faint); }
.wf-body { position: relative; }
.grid { position: absolute; top: 0; bottom: 0; left: var(--lblw); right: 0; pointer-events: none; overflow: hidden; }
.grid .gl { position: absolute; top: 0; bottom: 0; border-left: 1px solid #eef0f3; }
.row { position: relative; display: grid; grid-template-columns: var(--lblw) 1fr; height: var(--rowh); border-bottom: 1px solid #eef0f3; }
.row:last-child { border-bottom: 0; }
.row.fail > .lbl { box-shadow: inset 4px 0 0 var(--error); }
.row.flash { animation: flash 1.6s ease-out; }
@keyframes flash { from { background: #fff3bf; } to { background: transparent; } }
.wf.only-failing .row:not(.fail) { display: none; }
.row > .lbl { padding: 3px 10px 3px 12px; overflow: hidden; cursor: pointer; line-height: 15px; font-size: 12.5px; border-right: 1px solid var(--line); }
.row > .lbl:hover { background: var(--panel); }
.row > .lbl div { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.lbl .sock { font-family: var(--mono); font-size: 12.5px; }
.lbl .sock b { font-weight: 700; }
.lbl .sock .id { color: var(--faint); }
.lbl .chain { color: var(--fg); font-family: var(--mono); font-size: 11.5px; }
.lbl .chain .bad { color: var(--error); font-weight: 600; }
.lbl .story { color: var(--muted); font-size: 12px; }
.lbl .story.client { color: var(--client); }
.lbl .story.server { color: var(--server); }
.track { position: relative; overflow: hidden; }
.life { position: absolute; top: 32px; height: 2px; background: #c5cad2; min-width: 1px; }
.bar { position: absolute; top: 28px; height: 10px; min-width: 3px; border-radius: 2px; cursor: pointer; }
.bar.req { background: var(--req); z-index: 1; }
.bar.req.cut { background: repeating-linear-gradient(135deg, var(--req) 0 4px, #a9bde9 4px 7px); }
.bar.wait { top: 31px; height: 4px; min-width: 0; border-radius: 0; background: repeating-linear-gradient(90deg, var(--wait) 0 4px, transparent 4px 7px); }
.bar.wait.none { top: 28px; height: 10px; background: repeating-linear-gradient(135deg, #f6c9c9 0 5px, #fdeeee 5px 10px); border: 1px dashed var(--none); }
.bar.resp { background: var(--resp); }
.bar.resp.cut { background: repeating-linear-gradient(135deg, var(--cut) 0 4px, #f7c2a8 4px 7px); }
.bar.sel, .mk.sel svg, .xl.sel { outline: 2px solid #111; outline-offset: 1px; }
.xl { position: absolute; top: 3px; height: 15px; font-size: 11.5px; line-height: 15px; font-family: var(--mono); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; padding-left: 1px; color: #2b3138; cursor: pointer; }
.xl .bad { color: var(--error); font-weight: 600; }
.mk { position: absolute; top: 17px; width: 12px; height: 33px; transform: translateX(-50%); cursor: pointer; z-index: 2; }
.mk::before { content: ""; position: absolute; left: 50%; top: 0; bottom: 0; border-left: 1px dashed currentColor; opacity: .55; }
.mk svg { position: absolute; left: 0; width: 12px; height: 12px; overflow: visible; }
.mk.client { color: var(--client); }
.mk.server { color: var(--server); }
.mk.client svg { top: 0; }
.mk.server svg { bottom: 0; }
.brush { position: absolute; top: 0; bottom: 0; background: rgba(53, 99, 201, .12); border-left: 1px solid var(--info); border-right: 1px solid var(--info); pointer-events: none; z-index: 4; display: none; }

/* Hover tip and pinned details */
#tip { position: fixed; z-index: 20; max-width: 680px; background: #fff; border: 1px solid #c3c8cf; border-radius: 6px; box-shadow: 0 6px 24px rgba(0,0,0,.16); padding: 10px 12px; font-size: 13px; pointer-events: none; display: none; }
#details { position: fixed; z-index: 15; right: 18px; bottom: 18px; width: min(680px, calc(100vw - 36px)); max-height: 60vh; overflow: auto; background: #fff; border: 1px solid #aab1ba; border-radius: 8px; box-shadow: 0 10px 36px rgba(0,0,0,.22); padding: 12px 14px; font-size: 13px; display: none; }
#details .close { position: absolute; top: 6px; right: 8px; border: 0; background: transparent; font-size: 20px; line-height: 1; cursor: pointer; color: var(--muted); }
.d-head { font-family: var(--mono); font-size: 14px; font-weight: 600; overflow-wrap: anywhere; padding-right: 22px; }
.d-sub { color: var(--muted); margin: 2px 0 6px; }
.pill { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; background: var(--ok); }
.pill.bad { background: var(--error); }
.pill.warn { background: var(--warning); }
table.facts { border-collapse: collapse; margin-top: 6px; width: 100%; }
table.facts th { text-align: left; font-weight: 600; color: var(--muted); padding: 2px 10px 2px 0; white-space: nowrap; vertical-align: top; font-size: 12.5px; }
table.facts td { padding: 2px 10px 2px 0; font-family: var(--mono); font-size: 12.5px; vertical-align: top; overflow-wrap: anywhere; }
table.facts td.rel { white-space: nowrap; color: var(--muted); }
table.facts td.clk { white-space: nowrap; }
.d-actions { margin-top: 8px; }
.d-actions button { font: inherit; font-size: 12.5px; padding: 2px 10px; border: 1px solid #c3c8cf; border-radius: 4px; background: #fff; cursor: pointer; }
footer { margin-top: 28px; color: var(--muted); font-size: 12.5px; border-top: 1px solid var(--line); padding-top: 10px; }
footer p { margin: 4px 0; }
`;
