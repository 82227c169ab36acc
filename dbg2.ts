import { harakaHop } from './test/interop/next-hops.ts';
import { runCell, SCENARIOS, fromCaseHeader } from './test/interop/matrix.ts';
const hop = await harakaHop();
const c = await runCell(hop, SCENARIOS[2]!, 8000);
console.log(c.text);
const x = hop.stored().find((s) => s.rcpt.startsWith('d01'));
console.log(JSON.stringify(fromCaseHeader(x!.bytes)!.toString('latin1').split('\r\n').slice(8, 14)));
await hop.close();
