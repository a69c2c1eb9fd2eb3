/** `hangscope interfaces`: the interfaces `watch --interface` accepts. */
import { listInterfaces } from '../lib/capture/live.js';

/** Pseudo-devices libpcap lists that never carry TCP/IP (Bluetooth, netfilter queues, D-Bus, USB). */
const NOT_IP = /^(bluetooth|nflog|nfqueue|dbus|usbmon|can|vcan)/;

export function runInterfaces(o: { all?: boolean } = {}): void {
  const { from, interfaces } = listInterfaces();
  const shown = o.all === true ? interfaces : interfaces.filter((i) => !NOT_IP.test(i.name));
  const w = Math.max(6, ...shown.map((i) => i.name.length));
  const lines = [`Capture interfaces (from ${from}); watch uses "any" unless --interface says otherwise:`];
  for (const i of shown) {
    const desc = [i.description, i.flags.length ? `[${i.flags.join(', ')}]` : ''].filter((x) => x !== '').join(' ');
    lines.push(`  ${i.name.padEnd(w)}  ${desc}${i.name === 'any' ? '  (default)' : ''}`);
  }
  const hidden = interfaces.length - shown.length;
  if (hidden > 0) lines.push(`(${hidden} pseudo-devices that carry no TCP/IP not listed; --all lists them)`);
  process.stdout.write(`${lines.join('\n')}\n`);
}
