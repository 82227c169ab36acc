// What the built image holds, read from its root filesystem and config: the compiled CLI
// and the production dependencies, nothing from the tests or the dev dependencies; OCI
// labels with the version; an SBOM beside it that lists what is installed; and the
// distroless layout the pod specs rely on (Node at /nodejs/bin/node, user 65532, no shell).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO, builtImage, mountImage, type BuiltImage, type MountedImage } from '../helpers/image.ts';

interface LockPackage { version?: string; dev?: boolean; optional?: boolean; devOptional?: boolean }
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };
const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockPackage> };

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

/** Installed packages under `root`, by lockfile path (node_modules/a, node_modules/a/node_modules/@s/b), with their versions. */
function installed(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of walk(join(root, 'node_modules'))) {
    const rel = relative(root, f);
    // A package's own manifest, not one inside it (dist/esm/package.json and the like).
    if (!/^(node_modules\/(@[^/]+\/)?[^/@]+\/)+package\.json$/.test(rel)) continue;
    const { version } = JSON.parse(readFileSync(f, 'utf8')) as { version?: string };
    out.set(rel.slice(0, -'/package.json'.length), version ?? '');
  }
  return out;
}

describe('the image holds the compiled CLI and production dependencies, and nothing else', () => {
  let img: BuiltImage;
  let image: MountedImage;
  let app: string;

  // scripts/run-tests.mjs builds the image first; run on its own, this may build it (minutes).
  before(async () => {
    img = await builtImage();
    image = await mountImage(img);
    app = join(image.rootfs, 'app');
  }, { timeout: 30 * 60_000 });
  after(async () => { await image?.remove(); });

  it('carries the version and revision in its OCI labels', () => {
    const labels = image.config.Labels ?? {};
    assert.equal(labels['org.opencontainers.image.version'], pkg.version);
    assert.equal(JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')).version, pkg.version, 'the CLI reads the same package.json');
    assert.match(labels['org.opencontainers.image.revision'] ?? '', /^[0-9a-f]{40}(-dirty)?$/);
    assert.equal(labels['org.opencontainers.image.licenses'], 'Apache-2.0');
    assert.equal(img.version, pkg.version);
  });

  it('has /app = bin/mailrelay.mjs, dist/ (JavaScript only, no tests), node_modules/ and package.json', () => {
    assert.deepEqual(readdirSync(app).sort(), ['bin', 'dist', 'node_modules', 'package.json']);
    assert.deepEqual(readdirSync(join(app, 'bin')), ['mailrelay.mjs']);
    const dist = walk(join(app, 'dist')).map((f) => relative(app, f));
    assert.ok(dist.includes('dist/relay/main.js') && dist.includes('dist/operator/main.js'));
    assert.deepEqual(dist.filter((f) => !f.endsWith('.js')), [], 'only compiled JavaScript');
    assert.deepEqual(dist.filter((f) => /\.test\.js$|\/(testing|fixtures|fault-fs|golden)\.js$|^dist\/test\//.test(f)), [], 'no tests or test helpers');
    const manifest = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(manifest.devDependencies, undefined);
    assert.equal(manifest.scripts, undefined);
  });

  it('installs exactly the production dependency tree of package-lock.json', () => {
    const want = new Map(Object.entries(lock.packages)
      .filter(([path, p]) => path.startsWith('node_modules/') && !p.dev && !p.devOptional && !p.optional)
      .map(([path, p]) => [path, p.version ?? '']));
    const have = installed(app);
    const missing = [...want].filter(([path, v]) => have.get(path) !== v).map(([path]) => path);
    const extra = [...have.keys()].filter((path) => !want.has(path) && !lock.packages[path]?.optional);
    assert.deepEqual(missing, [], 'production packages missing or at another version');
    assert.deepEqual(extra, [], 'packages that are not production dependencies');
    // The lockfile knows which are dev-only (@types/node, say, is also a production dependency's).
    const devOnly = [...Object.keys(pkg.devDependencies), 'esbuild'].filter((d) => lock.packages[`node_modules/${d}`]?.dev);
    assert.ok(devOnly.includes('typescript') && devOnly.includes('tsx') && devOnly.includes('esbuild'));
    for (const dev of devOnly) assert.ok(!existsSync(join(app, 'node_modules', dev)), `dev dependency ${dev} in the image`);
    const declarations = walk(join(app, 'node_modules')).filter((f) => /\.d\.[mc]?ts$|\.map$/.test(f));
    assert.deepEqual(declarations.slice(0, 5), [], 'type declarations and source maps are stripped');
  });

  it('has a CycloneDX SBOM beside it listing the installed packages', () => {
    const sbom = JSON.parse(readFileSync(img.sbom, 'utf8')) as { bomFormat: string; specVersion: string; metadata: { component: { name: string; version: string } }; components: { name: string; group?: string; version: string }[] };
    assert.equal(sbom.bomFormat, 'CycloneDX');
    assert.deepEqual([sbom.metadata.component.name, sbom.metadata.component.version], ['mailrelay', pkg.version]);
    const listed = new Set(sbom.components.map((c) => `${c.group ? `${c.group}/` : ''}${c.name}@${c.version}`));
    const installedNames = new Set([...installed(app)].map(([path, v]) => `${path.replace(/^.*node_modules\//, '')}@${v}`));
    assert.deepEqual([...installedNames].filter((n) => !listed.has(n)), [], 'installed but not in the SBOM');
    assert.deepEqual([...listed].filter((n) => !installedNames.has(n)), [], 'in the SBOM but not installed');
    for (const dep of Object.keys(pkg.dependencies)) assert.ok([...listed].some((n) => n.startsWith(`${dep}@`)), `${dep} in the SBOM`);
  });

  it('has the distroless layout the pod specs rely on: /nodejs/bin/node, user 65532, /tmp, CA certificates, no shell', () => {
    accessSync(join(image.rootfs, 'nodejs/bin/node'), constants.X_OK);
    assert.match(readFileSync(join(image.rootfs, 'etc/passwd'), 'utf8'), /^nonroot:x:65532:65532:[^:]*:\/home\/nonroot:/m);
    assert.equal(statSync(join(image.rootfs, 'tmp')).mode & 0o7777, 0o1777);
    assert.ok(statSync(join(image.rootfs, 'etc/ssl/certs/ca-certificates.crt')).size > 100_000);
    assert.ok(existsSync(join(image.rootfs, 'usr/share/zoneinfo/UTC')));
    for (const shell of ['bin/sh', 'bin/bash', 'bin/busybox', 'usr/bin/apt']) assert.ok(!existsSync(join(image.rootfs, shell)), `/${shell} in the image`);
  });
});
