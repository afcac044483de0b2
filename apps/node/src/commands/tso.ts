import { boolFlag, intFlag, type CommandSpec } from '../args';
import { EXIT, type Command, type CommandContext } from '../command';
import { placementClient, targetFlags } from '../target';

// `flotilla tso`: fresh timestamps from placement's timestamp oracle.

const tsoSpec: CommandSpec = {
  path: ['tso'],
  summary: "Get fresh hybrid timestamps from placement's timestamp oracle (physical ms << 18 | logical).",
  description:
    'Asks the placement leader for --count consecutive timestamps in one round trip and prints each as a decimal 64-bit number, with its physical time (UTC) and logical part. Every timestamp is greater than any placement handed out before, across leader changes and restarts.',
  positionals: [],
  flags: [
    ...targetFlags,
    { name: 'count', type: 'string', placeholder: 'N', description: 'how many consecutive timestamps to get', default: '1', schema: intFlag(1, 65_536) },
    { name: 'json', type: 'boolean', description: 'print JSON {first, last, count, physicalMs, physicalTime, firstLogical} (timestamps as decimal strings)', schema: boolFlag() },
  ],
  examples: ['flotilla tso', 'flotilla tso --count 3 --placement 127.0.0.1:20160,127.0.0.1:20170'],
};

export const tsoCommand: Command = {
  spec: tsoSpec,
  async run(ctx: CommandContext) {
    const count = ctx.parsed.values['count'] as number;
    const { client } = await placementClient(ctx);
    try {
      const { composeTs } = await import('@flotilla/placement/client');
      const r = await client.getTimestampRange(count);
      const physicalTime = new Date(r.physicalMs).toISOString();
      const first = composeTs(r.physicalMs, r.firstLogical);
      if (ctx.parsed.values['json'] === true) {
        ctx.io.stdout.write(JSON.stringify({ first: String(first), last: String(first + BigInt(count - 1)), count, physicalMs: r.physicalMs, physicalTime, firstLogical: r.firstLogical }) + '\n');
        return EXIT.ok;
      }
      for (let i = 0; i < count; i++) ctx.io.stdout.write(`${first + BigInt(i)}  physical ${physicalTime}  logical ${r.firstLogical + i}\n`);
      return EXIT.ok;
    } finally {
      client.close();
    }
  },
};
