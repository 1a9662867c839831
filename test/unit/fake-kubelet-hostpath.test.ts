import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import '../fakes/kube/server.js'; // the fake's modules load in its order (kubelet.ts alone meets an import cycle)
import { checkHostPathType } from '../fakes/kube/kubelet.js';

/**
 * The fake kubelet's hostPath type check against the real one's texts and effects
 * (kubernetes/kubernetes pkg/volume/hostpath/host_path.go, checkTypeInternal): DirectoryOrCreate
 * creates a missing directory 0755, Directory and File insist, "" checks nothing.
 */
const root = await mkdtemp('/var/tmp/kubelet-hostpath-');
after(() => rm(root, { recursive: true, force: true }));

test('DirectoryOrCreate creates a missing directory (0755, parents too); refuses a file in the way', async () => {
  const dir = path.join(root, 'a', 'b');
  assert.equal(checkHostPathType(dir, 'DirectoryOrCreate'), undefined);
  const st = await stat(dir);
  assert.ok(st.isDirectory());
  assert.equal(st.mode & 0o777, 0o755);
  const file = path.join(root, 'file');
  await writeFile(file, 'x');
  assert.equal(checkHostPathType(file, 'DirectoryOrCreate'), `hostPath type check failed: ${file} is not a directory`);
});

test('Directory, File and the others must already be what they say; "" checks nothing; an unknown type is refused', async () => {
  const missing = path.join(root, 'missing');
  assert.equal(checkHostPathType(missing, 'Directory'), `hostPath type check failed: ${missing} is not a directory`);
  assert.equal(checkHostPathType(missing, 'File'), `hostPath type check failed: ${missing} is not a file`);
  assert.equal(checkHostPathType(missing, 'Socket'), `hostPath type check failed: ${missing} is not a socket file`);
  assert.equal(checkHostPathType(root, 'Directory'), undefined);
  assert.equal(checkHostPathType(missing, ''), undefined);
  assert.equal(checkHostPathType('/dev/null', 'CharDevice'), undefined);
  assert.equal(checkHostPathType(root, 'Folder'), 'Folder is an invalid volume type');
  const created = path.join(root, 'created.txt');
  assert.equal(checkHostPathType(created, 'FileOrCreate'), undefined);
  assert.equal((await stat(created)).mode & 0o777, 0o644);
});
