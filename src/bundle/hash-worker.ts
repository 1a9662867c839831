// Worker-thread entry for hashFiles(): hashes one file per task.
import { hashFile, hashParts, type FileHash, type PartsHash, type PartsTask } from './hash.js';

export default function hashTask(filePath: string): Promise<FileHash> {
  return hashFile(filePath);
}

/** Worker-thread entry for the per-part hashes of a split file (see hashParts). */
export function hashPartsTask(task: PartsTask): Promise<PartsHash> {
  return hashParts(task);
}
