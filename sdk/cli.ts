// The `openai-wrapi` command. This first cut covers the local stack; the SDK issue adds limits,
// usage, prices, cache and outputs.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';

const USAGE = `Usage: openai-wrapi <command>

Commands:
  local                          start the local stack (same as npm start)
  local users add NAME [--admin] add a user to the local stack's credentials file

Options:
  --home DIR   the local stack's data folder (default $OPENAI_WRAPI_HOME or .openai-wrapi)
  --json       machine-readable output
  -h, --help   this help`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      admin: { type: 'boolean', default: false },
      home: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const home = resolve(values.home ?? process.env.OPENAI_WRAPI_HOME ?? '.openai-wrapi');
  const [command, sub, action, name] = positionals;
  if (values.help || !command) {
    console.log(USAGE);
    return command || values.help ? 0 : 2;
  }
  if (command === 'local' && !sub) {
    process.env.OPENAI_WRAPI_HOME = home;
    await import('../runtime/local/main.ts');
    return -1; // keeps running
  }
  if (command === 'local' && sub === 'users' && action === 'add' && name) {
    const { addUser } = await import('../runtime/local/credentials.ts');
    const user = await addUser(home, name, values.admin);
    if (values.json) console.log(JSON.stringify({ name: user.name, accessKeyId: user.accessKeyId, admin: user.admin }));
    else {
      console.log(`Added ${user.admin ? 'admin ' : ''}user "${user.name}" (access key ${user.accessKeyId}) to ${home}/credentials.`);
      console.log(`Use it with: AWS_SHARED_CREDENTIALS_FILE=${home}/credentials AWS_PROFILE=${user.name}`);
    }
    return 0;
  }
  console.error(`openai-wrapi: unknown command "${positionals.join(' ')}". See openai-wrapi --help.`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err) => {
    console.error(`openai-wrapi: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = err instanceof TypeError && /parseArgs|Unknown option/.test(String(err)) ? 2 : 1;
  },
);
