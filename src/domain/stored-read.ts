/**
 * Reading the daemon's own records (heartbeat, registry) as untrusted input.
 * Every read returns a verdict instead of throwing, so a torn or hostile
 * record becomes a reported reason, never a crash and never a signal.
 */
export type StoredRead<T> = { readonly kind: 'ok'; readonly value: T } | { readonly kind: 'missing' } | { readonly kind: 'unreadable'; readonly reason: string };
