import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** A refusal of the server extension (or of the archive, passed on): `{"error", "code", "status"}`. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null,
    readonly body: any
  ) {
    super(message);
  }
}

function url(endPoint: string, settings: ServerConnection.ISettings): string {
  return URLExt.join(settings.baseUrl, 'surveyhub', endPoint);
}

async function send(
  endPoint: string,
  init: RequestInit,
  settings: ServerConnection.ISettings
): Promise<Response> {
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      url(endPoint, settings),
      init,
      settings
    );
  } catch (error) {
    throw new ServerConnection.NetworkError(error as any);
  }
  if (!response.ok) {
    const text = await response.text();
    let body: any = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = { error: text || response.statusText };
    }
    const message =
      (body && (body.error || body.message)) ||
      `${response.status} ${response.statusText}`;
    throw new ApiError(
      String(message),
      response.status,
      body?.code ?? null,
      body
    );
  }
  return response;
}

/** Call the server extension's JSON routes (the template's `requestAPI`). */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const response = await send(endPoint, init, settings);
  const text = await response.text();
  return (text ? JSON.parse(text) : null) as T;
}

/** Fetch bytes (thumbnails, previews) with the server's credentials; answer an object URL. */
export async function requestBlobURL(
  endPoint: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<string> {
  const response = await send(endPoint, {}, settings);
  return URL.createObjectURL(await response.blob());
}

/** Fetch a text product (the spectrum's CSV). */
export async function requestText(
  endPoint: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<string> {
  const response = await send(endPoint, {}, settings);
  return response.text();
}

/** A query string of the non-empty parameters. */
export function query(params: Record<string, string | undefined>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== '') {
      parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
    }
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

export interface IRelease {
  release: string;
  version: string;
  title?: string;
  description?: string;
  policy?: string;
  observation_start?: string;
  observation_end?: string;
  counts?: Record<string, number>;
  acknowledgement?: string;
  catalogs?: Record<string, { title?: string; rows?: number; columns?: any[] }>;
}

export interface IReleases {
  user?: string;
  releases: IRelease[];
}

export interface IColumn {
  name: string;
  unit?: string | null;
  ucd?: string | null;
  description?: string | null;
}

export interface ISearchResult {
  release: string;
  version: string;
  catalog: string;
  total: number | null;
  offset: number;
  columns: IColumn[];
  rows: any[][];
  query?: any;
}

export interface IDestination {
  space: string;
  kind: string;
  label: string;
  url?: string;
}

export interface IImportProgress {
  id: string;
  status: string;
  release: string;
  version: string;
  folder: string;
  url: string;
  destination: { space: string; folder: string; url?: string };
  /** Where the folder is in the file browser (`cloud/…`); null when the browser does not show it (S3). */
  path?: string | null;
  files_total: number;
  files_done: number;
  files_copied?: number;
  files_found?: number;
  files_failed: number;
  bytes_total: number;
  bytes_done: number;
  rate_bytes_per_s: number | null;
  elapsed_s: number | null;
  eta_s: number | null;
  created?: string;
  updated?: string;
  finished?: string | null;
  error: string | null;
  failures: any[];
  manifest: string | null;
}
