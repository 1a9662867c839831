// Worker-thread entry for hashFiles(): hashes one file per task.
import { hashFile, type FileHash } from './hash.js';

export default function hashTask(filePath: string): Promise<FileHash> {
  return hashFile(filePath);
}
