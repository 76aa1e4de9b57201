/**
 * `factory resume <KEY>` while a daemon runs: the verb must not start a second
 * team from its own process, so it leaves a request that the running daemon
 * takes on its next supervision pass and acts on through its own dispatcher.
 */
export interface ResumeRequests {
  /** Leaves a request to resume `issueKey`; a second one before it is taken changes nothing. */
  request(issueKey: string, atMs: number): Promise<void>;
  /** Takes every request left so far, oldest first; each is handed out once. */
  take(): Promise<ResumeRequest[]>;
}

export interface ResumeRequest {
  readonly issueKey: string;
  readonly atMs: number;
}
