// mpcd from Node.js with nothing but the .proto files: checks health, lists the models, solves a
// cartpole balancing problem and shows that a malformed request is refused with INVALID_ARGUMENT.
//
//   npm ci          (once, in client/node)
//   node solve_cartpole.js --target=localhost:50051 [--check]
//   node solve_cartpole.js --target=localhost:50051 --tls-ca=ca.pem [--tls-cert=client.pem
//        --tls-key=client.key] [--tls-server-name=NAME] [--token-file=token]
//
// The TLS options match mpcd's --tls_cert (--tls-ca: the CA that signed the server's certificate),
// --tls_client_ca (--tls-cert and --tls-key: this client's certificate, mutual TLS) and
// --auth_token_file (--token-file: sent as "authorization: Bearer <token>" with every call).
//
// --check turns the printout into assertions (exit 1 on any failure): the test runs it that way.
// --proto-dir (default ../../proto) and --grpc-proto-dir (default /usr/share/grpc-proto, Debian's
// grpc-proto) say where mpcd/v1/mpcd.proto and grpc/health/v1/health.proto are.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function parseArgs(argv) {
  const args = {
    target: 'localhost:50051',
    'proto-dir': path.join(__dirname, '..', '..', 'proto'),
    'grpc-proto-dir': '/usr/share/grpc-proto',
    'tls-ca': '',
    'tls-cert': '',
    'tls-key': '',
    'tls-server-name': '',
    'token-file': '',
    check: false,
  };
  for (const arg of argv) {
    const match = /^--([\w-]+)(?:=(.*))?$/.exec(arg);
    if (!match || !(match[1] in args)) throw new Error(`unknown argument ${arg}`);
    args[match[1]] = match[2] === undefined ? true : match[2];
  }
  return args;
}

function loadPackage(includeDir, file) {
  // keepCase: the field names of the .proto (x_init, u_lower, ...); enums as their names.
  const definition = protoLoader.loadSync(file, {
    includeDirs: [path.resolve(includeDir)], keepCase: true, enums: String, defaults: true, oneofs: true,
  });
  return grpc.loadPackageDefinition(definition);
}

// Plaintext, or TLS when a CA or a client certificate is given.
function channelCredentials(args) {
  if (!args['tls-ca'] && !args['tls-cert']) return grpc.credentials.createInsecure();
  if (!args['tls-cert'] !== !args['tls-key']) throw new Error('--tls-cert and --tls-key: give both or neither');
  const read = (file) => (file ? fs.readFileSync(file) : null);
  return grpc.credentials.createSsl(read(args['tls-ca']), read(args['tls-key']), read(args['tls-cert']));
}

function channelOptions(args) {
  return args['tls-server-name'] ? { 'grpc.ssl_target_name_override': args['tls-server-name'] } : {};
}

// Every call's metadata: the bearer token, if any.
function callMetadata(args) {
  const metadata = new grpc.Metadata();
  if (args['token-file']) {
    metadata.set('authorization', `Bearer ${fs.readFileSync(args['token-file'], 'utf8').trim()}`);
  }
  return metadata;
}

// A promise for a unary call with `metadata` and a deadline of `seconds`.
function call(client, method, request, metadata, seconds = 30) {
  const deadline = new Date(Date.now() + seconds * 1000);
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

// A row-major mpcd.v1.Tensor.
function tensor(shape, data) {
  return { shape, data };
}

function diag(values) {
  const n = values.length;
  const data = new Array(n * n).fill(0);
  values.forEach((v, i) => { data[i * n + i] = v; });
  return tensor([n, n], data);
}

// sum_t 0.5 tau_t' C tau_t + c' tau_t, tau_t = [x_t; u_t], for a time-invariant C and c.
function objective(x, u, C, c, T, n, m) {
  const k = n + m;
  let total = 0;
  for (let t = 0; t < T; ++t) {
    const tau = x.data.slice(t * n, (t + 1) * n).concat(u.data.slice(t * m, (t + 1) * m));
    for (let i = 0; i < k; ++i) {
      total += c.data[i] * tau[i];
      for (let j = 0; j < k; ++j) total += 0.5 * tau[i] * C.data[i * k + j] * tau[j];
    }
  }
  return total;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const mpcdProto = loadPackage(args['proto-dir'], 'mpcd/v1/mpcd.proto').mpcd.v1;
  const healthProto = loadPackage(args['grpc-proto-dir'], 'grpc/health/v1/health.proto').grpc.health.v1;
  const credentials = channelCredentials(args);
  const mpc = new mpcdProto.MpcService(args.target, credentials, channelOptions(args));
  const health = new healthProto.Health(args.target, credentials, channelOptions(args));
  const metadata = callMetadata(args);

  const status = (await call(health, 'Check', { service: '' }, metadata)).status;
  console.log(`health: ${status}`);

  const models = (await call(mpc, 'ListModels', {}, metadata)).models;
  const cartpole = models.find((model) => model.name === 'cartpole');
  console.log(`models: ${models.map((model) => model.name).join(', ')}; cartpole params ` +
              `${cartpole.param_names.join(', ')} = ${cartpole.default_params.join(', ')}`);
  const n = cartpole.state_dim;
  const m = cartpole.control_dim;

  // mpc.pytorch's cartpole cost: weights [0.1, 0.1, 1, 1, 0.1] on the state, 0.001 on the force,
  // goal upright (cos th = 1): c = -sqrt(weights) * goal. Start with the pole 0.5 rad off upright.
  const T = 25;
  const C = diag([0.1, 0.1, 1.0, 1.0, 0.1, 0.001]);
  const c = tensor([n + m], [0, 0, -1, 0, 0, 0]);
  const th = 0.5;
  const xInit = [0.2, 0.0, Math.cos(th), Math.sin(th), 0.0];
  const problem = {
    x_init: tensor([n], xInit),
    cost: { quadratic: C, linear: c },
    dynamics: { model: { name: 'cartpole' } },
    u_lower: tensor([m], [-100]),
    u_upper: tensor([m], [100]),
  };
  const response = await call(mpc, 'Solve', { horizon: T, problems: [problem], options: { max_iterations: 200 } }, metadata);
  const solution = response.solutions[0];
  const last = solution.x.data.slice((T - 1) * n);
  console.log(`solve: ${solution.status} after ${solution.iterations} iterations, cost ` +
              `${solution.cost.toFixed(6)}, backend ${response.backend}, ` +
              `${(response.timing.solve_seconds * 1e3).toFixed(2)} ms`);
  console.log(`  u[0..4] = ${solution.u.data.slice(0, 5).map((v) => v.toFixed(3)).join(', ')}`);
  console.log(`  x[T-1] = ${last.map((v) => v.toFixed(3)).join(', ')} (cos th = 1 is upright)`);

  let refused = null;
  try {
    await call(mpc, 'Solve', { horizon: T, problems: [{ ...problem, x_init: tensor([4], [0, 0, 1, 0]) }] }, metadata);
  } catch (error) {
    refused = error;
    console.log(`bad request: ${grpc.status[error.code]}: ${error.details}`);
  }

  if (args.check) {
    assert.equal(status, 'SERVING');
    assert.deepEqual(cartpole.param_names, ['gravity', 'masscart', 'masspole', 'length']);
    assert.equal(solution.status, 'CONVERGED');
    assert.deepEqual(solution.x.shape, [T, n]);
    assert.deepEqual(solution.u.shape, [T, m]);
    assert.deepEqual(solution.x.data.slice(0, n), xInit);
    assert.ok(solution.u.data.every((v) => Math.abs(v) <= 100));
    // The response's layout: the reported cost is the objective of the returned (x, u).
    const recomputed = objective(solution.x, solution.u, C, c, T, n, m);
    assert.ok(Math.abs(recomputed - solution.cost) <= 1e-9 * Math.max(1, Math.abs(recomputed)),
              `cost ${solution.cost} vs recomputed ${recomputed}`);
    // The plan brings the pole back up: from cos th = cos 0.5 to near upright by the end.
    assert.ok(last[2] > 0.9, `final cos th ${last[2]}`);
    assert.ok(refused !== null, 'a malformed request was accepted');
    assert.equal(refused.code, grpc.status.INVALID_ARGUMENT);
    assert.match(refused.details, /problems\[0\]\.x_init/);
    console.log('node client: all checks passed');
  }
  mpc.close();
  health.close();
}

main().catch((error) => {
  console.error(`solve_cartpole.js: ${error.stack || error}`);
  process.exit(1);
});
