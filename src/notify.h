/*
 * notify.h - LISTEN/NOTIFY in transaction and statement mode (notify.c).
 *
 * Each pool with listening clients has one LISTEN connection to the server
 * (the "listener", a Server with listener set, outside pool_size), which
 * LISTENs to the union of its clients' channels and hands every
 * NotificationResponse to the clients subscribed to its channel. What a
 * client listens to is learnt from the server itself: its channels are
 * LISTENed on each server it is linked to, and after a transaction that ran
 * LISTEN / UNLISTEN / DISCARD ALL pgbun reads pg_listening_channels() there,
 * so quoting, rollbacks and savepoints follow PostgreSQL exactly.
 */
#ifndef PGBUN_NOTIFY_H
#define PGBUN_NOTIFY_H

#include "pooler.h"

/* A client may listen to this many channels (they are LISTENed on each server it uses). */
#define NOTIFY_MAX_CLIENT_CHANNELS 64

/* Server.notify_changed: what the linked client ran since its channels were last read. */
#define NOTIFY_CHANGED_LISTEN	0x01	/* a LISTEN */
#define NOTIFY_CHANGED_OTHER	0x02	/* an UNLISTEN or DISCARD ALL */

/* Server.notify_step: where a held ReadyForQuery stands. */
typedef enum NotifyStep
{
	NOTIFY_STEP_NONE = 0,
	NOTIFY_STEP_READING,		/* its ReadyForQuery held; pg_listening_channels() running */
	NOTIFY_STEP_WAITING,		/* ... and the listener has not confirmed a new channel yet */
} NotifyStep;

extern int	pgbun_notify_queue_size;	/* bytes of notifications queued per client */

/* server.c / server_login.c */
extern int	notify_link(Server *s, Client *c);
extern void notify_command_complete(Server *s, const char *tag);
extern PktAction notify_server_notification(Server *s, const uint8 *msg, uint32 avail, uint32 size);
extern bool notify_hold_ready(Server *s);
extern bool notify_hidden_message(Server *s, char type, const uint8 *msg, uint32 size);
extern void notify_hidden_done(Server *s);
extern dlist_head *notify_server_list(Server *s);
extern dlist_head *notify_pool_servers(Pool *pool);
extern void notify_listener_ready(Server *s);
extern void notify_listener_login_failed(Server *s);
extern void notify_listener_event(Server *s);
extern void notify_server_closed(Server *s);

/* client.c */
extern void notify_client_close(Client *c);
extern void notify_client_free(Client *c);
extern void notify_client_writable(Client *c);

/* pool.c */
extern void notify_janitor(void);
extern void notify_pool_free(struct Pool *pool);

#endif							/* PGBUN_NOTIFY_H */
