// The mailrelay image as the tests see it: built by scripts/build-image.sh (the script CI
// runs; it returns in seconds when nothing the image is built from has changed), opened as
// a root filesystem with buildah, and run by a small container runtime of our own. The
// runtime does what the part of a node's runtime (runc under containerd or CRI-O) that the
// pod spec controls does: the image's entrypoint, or the container's command and args,
// with the container's user and group, a read-only root filesystem when asked, and each
// volume bind-mounted at its mount path. It shares the host's network namespace (tests
// only use loopback), so callers map container ports to free host ports (kubelet.ts).
//
// Root only (mount namespaces, chroot, setuid): CI runs as root.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The repository root. */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** What scripts/build-image.sh wrote to .image/image.json. */
export interface BuiltImage {
  /** Name in the local store, e.g. localhost/mailrelay:0.1.0. */
  image: string;
  /** Image ID (names move when another checkout builds; the ID does not). */
  id: string;
  /** org.opencontainers.image.version. */
  version: string;
  revision: string;
  /** Bytes of the unpacked root filesystem. */
  sizeBytes: number;
  /** The CycloneDX SBOM written beside the image. */
  sbom: string;
  runtimeBase: string;
  buildBase: string;
  /** The buildah store the image is in. */
  buildah: { root: string; runroot: string; storageDriver: string };
}

/** The parts of an OCI image config a runtime reads. */
export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  User?: string;
  Env?: string[];
  WorkingDir?: string;
  Labels?: Record<string, string>;
}

let building: Promise<BuiltImage> | undefined;

/** Builds the image (unless it is up to date) once per process, and describes it. */
export function builtImage(): Promise<BuiltImage> {
  building ??= (async () => {
    await run('bash', [join(REPO, 'scripts', 'build-image.sh')], { cwd: REPO, timeout: 30 * 60_000, maxBuffer: 64 << 20 })
      .catch((err: Error & { stderr?: string }) => { throw new Error(`scripts/build-image.sh failed: ${err.message}\n${err.stderr?.slice(-4000) ?? ''}`); });
    const out = process.env.MAILRELAY_IMAGE_OUT ?? join(REPO, '.image');
    return JSON.parse(readFileSync(join(out, 'image.json'), 'utf8')) as BuiltImage;
  })();
  return building;
}

/** Runs buildah on the image's store. */
export async function buildah(img: BuiltImage, args: string[]): Promise<string> {
  const { stdout } = await run('buildah', ['--root', img.buildah.root, '--runroot', img.buildah.runroot, '--storage-driver', img.buildah.storageDriver, ...args], {
    maxBuffer: 64 << 20, env: { ...process.env, BUILDAH_ISOLATION: 'chroot' },
  });
  return stdout.trim();
}

/** A working container of the image, mounted. */
export interface MountedImage {
  /** Its root filesystem, a directory of its own: a runtime may create mount points in it. */
  rootfs: string;
  config: ImageConfig;
  /** Deletes the working container. */
  remove(): Promise<void>;
}

/** Creates a fresh working container of the image and mounts it. */
export async function mountImage(img: BuiltImage): Promise<MountedImage> {
  const ctr = await buildah(img, ['from', '--quiet', '--pull-never', img.id]);
  const rootfs = await buildah(img, ['mount', ctr]);
  const inspected = JSON.parse(await buildah(img, ['inspect', '--type', 'image', img.id])) as { OCIv1: { config: ImageConfig } };
  return { rootfs, config: inspected.OCIv1.config, remove: async () => { await buildah(img, ['rm', ctr]); } };
}

/** One volume as the runtime mounts it. */
export interface ContainerMount {
  /** Directory or file on the host. */
  hostPath: string;
  /** Where the container sees it. */
  containerPath: string;
  readOnly?: boolean;
  /** A single file (/etc/hosts and the like), not a directory. */
  file?: boolean;
}

/** A process to start in a container of an image. */
export interface ContainerSpec {
  rootfs: string;
  /** Executable (absolute, inside the image) and arguments. */
  argv: string[];
  uid: number;
  gid: number;
  readOnlyRootFilesystem: boolean;
  mounts: ContainerMount[];
  env: Record<string, string>;
  workingDir: string;
}

// Runs in a private mount namespace (unshare -m), as root, then becomes the container
// process by exec: the PID the caller holds is the container's, and signals reach it.
// The root is bound onto itself first; mount points missing from the image are created in
// it (in the container's own root filesystem, as runc does in a container's writable
// layer); /proc, /dev (a tmpfs with the usual devices) and a read-only /sys come before the
// volumes, as in runc; last the root is remounted read-only, which leaves the mounts below it
// as they are.
const RUNTIME_SCRIPT = [
  'set -eu',
  'root=$1 uid=$2 gid=$3 ro=$4 wd=$5',
  'shift 5',
  'mount --bind "$root" "$root"',
  'mkdir -p "$root/proc" "$root/dev" "$root/sys"',
  'mount -t proc proc "$root/proc"',
  'mount -t tmpfs -o nosuid,mode=0755 tmpfs "$root/dev"',
  'for d in null zero full random urandom tty; do : >"$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done',
  'ln -s /proc/self/fd "$root/dev/fd"',
  'mount --rbind /sys "$root/sys"',
  'mount -o remount,bind,ro "$root/sys"',
  'while [ "$1" != "--" ]; do',
  '  if [ "$3" = file ]; then mkdir -p "$root$(dirname "$2")"; [ -e "$root$2" ] || : >"$root$2"; else mkdir -p "$root$2"; fi',
  '  mount --bind "$1" "$root$2"',
  '  if [ "$4" = ro ]; then mount -o remount,bind,ro "$root$2"; fi',
  '  shift 4',
  'done',
  'shift',
  'if [ "$ro" = ro ]; then mount -o remount,bind,ro "$root"; fi',
  'exec setpriv --no-new-privs unshare --root="$root" --wd="$wd" --setgid "$gid" --setuid "$uid" -- "$@"',
].join('\n');

/** Starts a process in a container (see the top of this file); stdio is piped. */
export function startContainer(spec: ContainerSpec): ChildProcess {
  const mountArgs = spec.mounts.flatMap((m) => [m.hostPath, m.containerPath, m.file ? 'file' : 'dir', m.readOnly ? 'ro' : 'rw']);
  return spawn('unshare', [
    '--mount', '--propagation', 'private', '--', 'sh', '-c', RUNTIME_SCRIPT, 'container-runtime',
    spec.rootfs, String(spec.uid), String(spec.gid), spec.readOnlyRootFilesystem ? 'ro' : 'rw', spec.workingDir,
    ...mountArgs, '--', ...spec.argv,
  ], { env: spec.env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The image's environment (Env) as a map. */
export function imageEnv(config: ImageConfig): Record<string, string> {
  return Object.fromEntries((config.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

/** The home directory /etc/passwd in the image gives a uid ("/" when none does, as runc). */
export function homeOf(rootfs: string, uid: number): string {
  const line = readFileSync(join(rootfs, 'etc', 'passwd'), 'utf8').split('\n').find((l) => l.split(':')[2] === String(uid));
  return line?.split(':')[5] || '/';
}
