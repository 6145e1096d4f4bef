/*
 * listener.h - pgbun's listening sockets: TCP (IPv4/IPv6) and Unix.
 */
#ifndef PGBUN_LISTENER_H
#define PGBUN_LISTENER_H

#include "postgres.h"

/* Open listeners for the current settings (at start). */
extern void listeners_open(void);
/* After a reload: re-bind if addresses, port or socket directories changed. */
extern void listeners_reconfigure(void);
extern void listeners_close(void);
extern void listener_on_event(void *obj);
/* Put listeners paused after an accept failure (EMFILE ...) back once their time is up. */
extern void listeners_resume_due(void);
extern int	listeners_count(void);

#endif							/* PGBUN_LISTENER_H */
