import type { TestS3 } from '../infra/ceph-rgw.js';

/** The environment an AWS user would set for the test RGW (an S3-compatible server), for CLI runs. */
export function s3CliEnv(s3: TestS3, endpoint = s3.endpoint): NodeJS.ProcessEnv {
  return {
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: s3.region,
    MODELCTL_S3_PATH_STYLE: 'true',
  };
}
