// mpcd replicas from Node.js: one channel over every replica with the service config of
// client/service_config/replicated.json (round-robin, retries of UNAVAILABLE; grpc-js does not
// implement the config's client-side health checking and ignores that part).
//
//   node replicas.js --target=ipv4:127.0.0.1:50051,127.0.0.1:50052 [--calls=20]
//                    [--service-config=../service_config/replicated.json] [--pause]
//
// Sends --calls one-problem Solves one after another and prints "phase 1: K/N OK"; with --pause it
// then waits for a line on stdin (a test kills a replica meanwhile) and sends --calls more
// ("phase 2: K/N OK"). Exit 1 if any call failed. --proto-dir defaults to ../../proto.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function parseArgs(argv) {
  const args = {
    target: '',
    calls: '20',
    'service-config': path.join(__dirname, '..', 'service_config', 'replicated.json'),
    'proto-dir': path.join(__dirname, '..', '..', 'proto'),
    pause: false,
  };
  for (const arg of argv) {
    const match = /^--([\w-]+)(?:=(.*))?$/.exec(arg);
    if (!match || !(match[1] in args)) throw new Error(`unknown argument ${arg}`);
    args[match[1]] = match[2] === undefined ? true : match[2];
  }
  if (!args.target) throw new Error('--target=ipv4:HOST:PORT,HOST:PORT,... is required');
  return args;
}

// A scalar LQR, x' = x + u, from x_init = 1 over T = 5 steps.
const REQUEST = {
  horizon: 5,
  problems: [{
    x_init: { shape: [1], data: [1.0] },
    cost: { quadratic: { shape: [2, 2], data: [1, 0, 0, 1] }, linear: { shape: [2], data: [0, 0] } },
    dynamics: { linear: { transition: { shape: [1, 2], data: [1, 1] } } },
  }],
};

function solve(client) {
  const deadline = new Date(Date.now() + 30 * 1000);
  return new Promise((resolve) => {
    client.Solve(REQUEST, { deadline }, (error, response) => {
      if (error) {
        console.log(`call failed: ${grpc.status[error.code]}: ${error.details}`);
        resolve(false);
      } else {
        resolve(response.solutions[0].status === 'CONVERGED');
      }
    });
  });
}

async function phase(client, name, calls) {
  let ok = 0;
  for (let i = 0; i < calls; ++i) ok += (await solve(client)) ? 1 : 0;
  console.log(`${name}: ${ok}/${calls} OK`);
  return ok === calls;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const definition = protoLoader.loadSync('mpcd/v1/mpcd.proto', {
    includeDirs: [path.resolve(args['proto-dir'])], keepCase: true, enums: String, oneofs: true,
  });
  const mpcd = grpc.loadPackageDefinition(definition).mpcd.v1;
  const serviceConfig = fs.readFileSync(args['service-config'], 'utf8');
  const client = new mpcd.MpcService(args.target, grpc.credentials.createInsecure(), {
    'grpc.service_config': serviceConfig,
  });
  const calls = Number(args.calls);
  let passed = await phase(client, 'phase 1', calls);
  if (args.pause) {
    const lines = readline.createInterface({ input: process.stdin });
    await new Promise((resolve) => lines.once('line', resolve));
    lines.close();
    passed = (await phase(client, 'phase 2', calls)) && passed;
  }
  client.close();
  process.exit(passed ? 0 : 1);
}

main().catch((error) => {
  console.error(`replicas.js: ${error.stack || error}`);
  process.exit(1);
});
