/*
 * JdbcWorkload.java - the pgjdbc (Debian's libpostgresql-jdbc-java) workload
 * that t/212_jdbc.pl compiles and runs, first straight against the server, then
 * through a pgbun transaction pool much smaller than the number of clients.
 *
 * Usage: java -cp BUILD:/usr/share/java/postgresql.jar JdbcWorkload
 *            --port P --user U --database D --tag T [--host H] [--clients N]
 *            [--timezone ZONE] [--timeout S] [--avoid BUG,...]
 * The password comes from PGPASSWORD. Rows go into
 *     client_rows (lib text, client int, seq int, val bigint,
 *                  PRIMARY KEY (lib, client, seq))
 * under lib = the tag, which the caller creates; the tag's rows must not exist.
 *
 * --clients N threads (default 40), each with its own Connection opened with
 * prepareThreshold=1 (every PreparedStatement is a named server-side statement,
 * S_1, S_2 ..., from its first run) and
 * options=-c TimeZone=ZONE -c IntervalStyle=iso_8601 (ZONE default Asia/Tokyo).
 * pgjdbc itself sends TimeZone (the JVM's zone) in the startup packet, which
 * the server applies after options, so the caller runs the JVM with
 * -Duser.timezone=ZONE; IntervalStyle comes from options alone. Each client c:
 *   1. SHOW TimeZone is ZONE, a timestamptz renders with ZONE's offset, SHOW
 *      IntervalStyle is iso_8601 and an interval renders as P1DT2H (again at
 *      the end, after its statements went to whichever server was free);
 *   2. one PreparedStatement run 10 times in autocommit, noting which server
 *      backend answered;
 *   3. two committed transactions reusing one insert PreparedStatement:
 *      addBatch/executeBatch of seq 1..10, then 11..20 (val = c*1000+seq), each
 *      batch's update counts checked and its rows seen inside the transaction;
 *   4. a rolled-back transaction that inserted seq -1 with the same statement;
 *   5. a division by zero (22012) in autocommit and the connection answers
 *      after it; one inside a transaction after inserting seq -2: the next
 *      statement gets 25P02, the rollback takes the row away;
 *   6. COPY ... FROM STDIN run as a plain Statement (the extended protocol):
 *      pgjdbc refuses it (CopyFail to the server, an SQLException here) and the
 *      connection answers after it;
 *   7. CopyManager.copyIn of seq 100..199, CopyManager.copyOut of the client's
 *      rows, every line checked;
 *   8. its rows counted and summed: 120 rows, the sum of their val.
 * At the end the tag's rows are counted once more. --avoid names known pgbun
 * bugs (AVOIDABLE below) whose code paths to replace by others.
 *
 * Prints one line of JSON (the summary) on stdout; each mismatch goes to
 * stderr and the exit status is 1; a run not finished within --timeout seconds
 * (default 180) exits with status 2.
 */

import java.io.StringReader;
import java.io.StringWriter;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.OffsetDateTime;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLong;

import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public class JdbcWorkload
{
	/*
	 * Known pgbun bugs that --avoid can steer around (the TAP file passes the
	 * ones not fixed yet, and runs the full workload too, as a TODO test).
	 */
	static final Set<String> AVOIDABLE = new HashSet<>(Arrays.asList(
		/* options in the startup packet: refused with 08P01. Avoided: SET after connecting. */
		"startup-options",
		/* step 6, COPY FROM STDIN through the extended protocol. Avoided: left out. */
		"extended-copy"));

	static final int PREPARED_RUNS = 10;
	static final int COPY_FIRST = 100;
	static final int COPY_LAST = 199;
	static final int ROWS_PER_CLIENT = 20 + (COPY_LAST - COPY_FIRST + 1);

	final Map<String, String> opt;
	final String tag;
	final String zone;
	final Set<String> avoid = new TreeSet<>();
	final List<String> failures = Collections.synchronizedList(new ArrayList<>());
	final Map<String, AtomicLong> counts = new java.util.LinkedHashMap<>();
	final Set<Integer> pids = Collections.synchronizedSet(new HashSet<>());
	final OffsetDateTime probe = OffsetDateTime.of(2024, 1, 1, 0, 0, 0, 0, ZoneOffset.UTC);
	final long started = System.nanoTime();
	volatile Integer committed = null;

	JdbcWorkload(Map<String, String> opt)
	{
		this.opt = opt;
		this.tag = opt.get("tag");
		this.zone = opt.getOrDefault("timezone", "Asia/Tokyo");
		for (String b : opt.getOrDefault("avoid", "").split(","))
			if (!b.isEmpty())
			{
				if (!AVOIDABLE.contains(b))
					throw new IllegalArgumentException("unknown --avoid bug: " + b);
				avoid.add(b);
			}
		for (String k : new String[] {"timezoneChecks", "prepared", "commits", "batchRows", "rollbacks",
				"errorsRecovered", "copyRefused", "copiedIn", "copiedOut", "clientsDone"})
			counts.put(k, new AtomicLong());
	}

	int clients()
	{
		return Integer.parseInt(opt.getOrDefault("clients", "40"));
	}

	static long val(int c, int seq)
	{
		return c * 1000L + seq;
	}

	static long rowSum(int c)
	{
		long s = 0;
		for (int seq = 1; seq <= 20; seq++)
			s += val(c, seq);
		for (int seq = COPY_FIRST; seq <= COPY_LAST; seq++)
			s += val(c, seq);
		return s;
	}

	void add(String k, long n)
	{
		counts.get(k).addAndGet(n);
	}

	void fail(String what)
	{
		failures.add(what);
	}

	boolean same(Object got, Object want, String what)
	{
		if (!String.valueOf(got).equals(String.valueOf(want)))
		{
			fail(what + ": got " + got + ", expected " + want);
			return false;
		}
		return true;
	}

	Connection connect(boolean withZone) throws SQLException
	{
		Properties p = new Properties();
		p.setProperty("user", opt.get("user"));
		p.setProperty("password", System.getenv().getOrDefault("PGPASSWORD", ""));
		p.setProperty("prepareThreshold", "1");
		p.setProperty("sslmode", "disable");
		p.setProperty("connectTimeout", "60");
		p.setProperty("socketTimeout", "300");
		if (withZone && !avoid.contains("startup-options"))
			p.setProperty("options", "-c TimeZone=" + zone + " -c IntervalStyle=iso_8601");
		String url = "jdbc:postgresql://" + opt.getOrDefault("host", "127.0.0.1") + ":" + opt.get("port") + "/"
			+ opt.get("database");
		Connection conn = DriverManager.getConnection(url, p);
		if (withZone && avoid.contains("startup-options"))
			try (Statement st = conn.createStatement())
			{
				st.execute("SET TimeZone = '" + zone + "'");
				st.execute("SET IntervalStyle = iso_8601");
			}
		return conn;
	}

	String one(Connection conn, String sql) throws SQLException
	{
		try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(sql))
		{
			rs.next();
			return rs.getString(1);
		}
	}

	int count(Connection conn, int c, Integer seq) throws SQLException
	{
		try (PreparedStatement ps = conn.prepareStatement(
				"SELECT count(*) FROM client_rows WHERE lib = ? AND client = ? AND (?::int IS NULL OR seq = ?::int)"))
		{
			ps.setString(1, tag);
			ps.setInt(2, c);
			if (seq == null)
			{
				ps.setNull(3, java.sql.Types.INTEGER);
				ps.setNull(4, java.sql.Types.INTEGER);
			}
			else
			{
				ps.setInt(3, seq);
				ps.setInt(4, seq);
			}
			try (ResultSet rs = ps.executeQuery())
			{
				rs.next();
				return rs.getInt(1);
			}
		}
	}

	void checkTimezone(Connection conn, int c, String when) throws SQLException
	{
		same(one(conn, "SHOW TimeZone"), zone, "client " + c + " " + when + ": SHOW TimeZone");
		OffsetDateTime local = probe.atZoneSameInstant(ZoneId.of(zone)).toOffsetDateTime();
		String off = local.getOffset().getId().replace(":00", "");
		if (off.equals("Z"))
			off = "+00";
		String want = local.format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss")) + off;
		same(one(conn, "SELECT '2024-01-01 00:00:00+00'::timestamptz::text"), want,
			"client " + c + " " + when + ": a timestamptz as text");
		same(one(conn, "SHOW IntervalStyle"), "iso_8601", "client " + c + " " + when + ": SHOW IntervalStyle");
		same(one(conn, "SELECT interval '1 day 2 hours'::text"), "P1DT2H", "client " + c + " " + when + ": an interval");
		add("timezoneChecks", 1);
	}

	String sqlstateOf(SQLException e)
	{
		return e.getSQLState();
	}

	void divideByZero(PreparedStatement div, String what) throws SQLException
	{
		div.setInt(1, 0);
		try
		{
			div.executeQuery().close();
			fail(what + ": SELECT 1 / 0 did not fail");
		}
		catch (SQLException e)
		{
			same(sqlstateOf(e), "22012", what + ": SQLSTATE");
		}
	}

	void insertBatch(PreparedStatement ins, int c, int from, int to, String what) throws SQLException
	{
		for (int seq = from; seq <= to; seq++)
		{
			ins.setString(1, tag);
			ins.setInt(2, c);
			ins.setInt(3, seq);
			ins.setLong(4, val(c, seq));
			ins.addBatch();
		}
		int[] n = ins.executeBatch();
		int[] want = new int[to - from + 1];
		Arrays.fill(want, 1);
		if (same(Arrays.toString(n), Arrays.toString(want), what + ": executeBatch update counts"))
			add("batchRows", n.length);
	}

	void client(int c) throws Exception
	{
		try (Connection conn = connect(true))
		{
			// 1. the time zone
			checkTimezone(conn, c, "at start");

			// 2. a PreparedStatement run many times
			try (PreparedStatement sq = conn.prepareStatement("SELECT ?::int * ?::int, pg_backend_pid()"))
			{
				for (int k = 0; k < PREPARED_RUNS; k++)
				{
					int v = c + k;
					sq.setInt(1, v);
					sq.setInt(2, v);
					try (ResultSet rs = sq.executeQuery())
					{
						rs.next();
						if (same(rs.getLong(1), (long) v * v, "client " + c + " prepared run " + k))
							pids.add(rs.getInt(2));
					}
					add("prepared", 1);
				}
			}

			PreparedStatement ins = conn.prepareStatement(
				"INSERT INTO client_rows (lib, client, seq, val) VALUES (?, ?, ?, ?)");
			PreparedStatement div = conn.prepareStatement("SELECT 1 / ?::int");

			// 3. two committed transactions, one insert statement
			conn.setAutoCommit(false);
			insertBatch(ins, c, 1, 10, "client " + c + " batch 1");
			same(count(conn, c, null), 10, "client " + c + ": its rows inside transaction 1");
			conn.commit();
			add("commits", 1);
			insertBatch(ins, c, 11, 20, "client " + c + " batch 2");
			same(count(conn, c, null), 20, "client " + c + ": its rows inside transaction 2");
			conn.commit();
			add("commits", 1);

			// 4. a rolled-back transaction
			ins.setString(1, tag);
			ins.setInt(2, c);
			ins.setInt(3, -1);
			ins.setLong(4, 0);
			same(ins.executeUpdate(), 1, "client " + c + ": insert to roll back");
			same(count(conn, c, null), 21, "client " + c + ": rows inside the transaction to roll back");
			conn.rollback();
			same(count(conn, c, null), 20, "client " + c + ": rows after the rollback");
			conn.rollback();
			add("rollbacks", 1);

			// 5. errors recovered from
			conn.setAutoCommit(true);
			divideByZero(div, "client " + c);
			same(one(conn, "SELECT " + c + " + 1"), c + 1, "client " + c + ": answers after the error");
			conn.setAutoCommit(false);
			ins.setString(1, tag);
			ins.setInt(2, c);
			ins.setInt(3, -2);
			ins.setLong(4, 0);
			ins.executeUpdate();
			divideByZero(div, "client " + c + " in a transaction");
			try
			{
				one(conn, "SELECT 1");
				fail("client " + c + ": a statement after the error in the transaction ran");
			}
			catch (SQLException e)
			{
				same(sqlstateOf(e), "25P02", "client " + c + ": after the error in the transaction");
			}
			conn.rollback();
			conn.setAutoCommit(true);
			same(count(conn, c, -2), 0, "client " + c + ": the failed transaction's row is gone");
			add("errorsRecovered", 2);

			// 6. COPY FROM STDIN as a plain statement: pgjdbc refuses it
			if (!avoid.contains("extended-copy"))
			{
				try (Statement st = conn.createStatement())
				{
					st.execute("COPY client_rows (lib, client, seq, val) FROM STDIN");
					fail("client " + c + ": COPY FROM STDIN as a plain statement did not fail");
				}
				catch (SQLException e)
				{
					if (e.getMessage() != null && e.getMessage().contains("CopyManager"))
						add("copyRefused", 1);
					else
						fail("client " + c + ": COPY as a plain statement: " + sqlstateOf(e) + " " + e.getMessage());
				}
				same(one(conn, "SELECT " + c + " * 3"), c * 3, "client " + c + ": answers after the refused COPY");
			}

			// 7. CopyManager both ways
			CopyManager cm = conn.unwrap(PGConnection.class).getCopyAPI();
			StringBuilder in = new StringBuilder();
			for (int seq = COPY_FIRST; seq <= COPY_LAST; seq++)
				in.append(tag).append('\t').append(c).append('\t').append(seq).append('\t').append(val(c, seq)).append('\n');
			long n = cm.copyIn("COPY client_rows (lib, client, seq, val) FROM STDIN", new StringReader(in.toString()));
			if (same(n, COPY_LAST - COPY_FIRST + 1, "client " + c + ": copyIn rows"))
				add("copiedIn", n);
			StringWriter out = new StringWriter();
			long m = cm.copyOut("COPY (SELECT client, seq, val FROM client_rows WHERE lib = '" + tag.replace("'", "''")
				+ "' AND client = " + c + " ORDER BY seq) TO STDOUT", out);
			StringBuilder want = new StringBuilder();
			for (int seq = 1; seq <= 20; seq++)
				want.append(c).append('\t').append(seq).append('\t').append(val(c, seq)).append('\n');
			for (int seq = COPY_FIRST; seq <= COPY_LAST; seq++)
				want.append(c).append('\t').append(seq).append('\t').append(val(c, seq)).append('\n');
			same(m, ROWS_PER_CLIENT, "client " + c + ": copyOut rows");
			if (same(out.toString(), want.toString(), "client " + c + ": copyOut text"))
				add("copiedOut", m);

			// 8. its rows add up; the time zone is still the client's
			try (PreparedStatement ps = conn.prepareStatement(
					"SELECT count(*), sum(val) FROM client_rows WHERE lib = ? AND client = ?"))
			{
				ps.setString(1, tag);
				ps.setInt(2, c);
				try (ResultSet rs = ps.executeQuery())
				{
					rs.next();
					same(rs.getLong(1) + " " + rs.getLong(2), ROWS_PER_CLIENT + " " + rowSum(c),
						"client " + c + ": its rows and their sum");
				}
			}
			checkTimezone(conn, c, "at the end");
			ins.close();
			div.close();
		}
		add("clientsDone", 1);
	}

	void run() throws Exception
	{
		int n = clients();
		Thread[] threads = new Thread[n];
		for (int i = 0; i < n; i++)
		{
			final int c = i;
			threads[i] = new Thread(() -> {
				try
				{
					client(c);
				}
				catch (Throwable e)
				{
					StackTraceElement at = null;
					for (StackTraceElement el : e.getStackTrace())
						if (el.getClassName().equals("JdbcWorkload"))
						{
							at = el;
							break;
						}
					String state = e instanceof SQLException ? " (SQLSTATE " + ((SQLException) e).getSQLState() + ")" : "";
					fail("client " + c + " failed: " + e.getClass().getSimpleName() + ": "
						+ String.valueOf(e.getMessage()).split("\n")[0] + state
						+ (at != null ? " at line " + at.getLineNumber() : ""));
				}
			});
			threads[i].setDaemon(true);
			threads[i].start();
		}
		for (Thread t : threads)
			t.join();
		try (Connection conn = connect(false);
			 PreparedStatement ps = conn.prepareStatement(
				 "SELECT count(*), coalesce(sum(val), 0), count(*) FILTER (WHERE seq < 0) FROM client_rows WHERE lib = ?"))
		{
			ps.setString(1, tag);
			try (ResultSet rs = ps.executeQuery())
			{
				rs.next();
				committed = rs.getInt(1);
				long sum = 0;
				for (int c = 0; c < n; c++)
					sum += rowSum(c);
				same(rs.getLong(1) + " " + rs.getLong(2) + " " + rs.getLong(3), (long) n * ROWS_PER_CLIENT + " " + sum + " 0",
					"rows, their sum, rolled-back rows at the end");
			}
		}
	}

	static String q(String s)
	{
		return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
	}

	String summary()
	{
		StringBuilder b = new StringBuilder("{\"lib\": \"jdbc\", \"tag\": " + q(tag) + ", \"clients\": " + clients());
		b.append(", \"avoid\": [");
		int i = 0;
		for (String a : avoid)
			b.append(i++ > 0 ? ", " : "").append(q(a));
		b.append("]");
		for (Map.Entry<String, AtomicLong> e : counts.entrySet())
			b.append(", ").append(q(e.getKey())).append(": ").append(e.getValue().get());
		b.append(", \"committed\": ").append(committed);
		b.append(", \"backendPids\": ").append(pids.size());
		b.append(", \"failures\": ").append(failures.size());
		b.append(", \"ms\": ").append((System.nanoTime() - started) / 1000000).append("}");
		return b.toString();
	}

	void report()
	{
		synchronized (failures)
		{
			int k = 0;
			for (String f : failures)
				if (k++ < 20)
					System.err.println("  " + f);
			if (failures.size() > 20)
				System.err.println("  ... and " + (failures.size() - 20) + " more");
		}
	}

	public static void main(String[] args) throws Exception
	{
		Map<String, String> opt = new HashMap<>();
		for (int i = 0; i + 1 < args.length; i += 2)
		{
			if (!args[i].startsWith("--"))
				throw new IllegalArgumentException("bad argument " + args[i]);
			opt.put(args[i].substring(2), args[i + 1]);
		}
		for (String k : new String[] {"port", "user", "database", "tag"})
			if (!opt.containsKey(k))
				throw new IllegalArgumentException("--" + k + " is required");
		JdbcWorkload w = new JdbcWorkload(opt);
		double timeout = Double.parseDouble(opt.getOrDefault("timeout", "180"));
		Thread watchdog = new Thread(() -> {
			try
			{
				Thread.sleep((long) (timeout * 1000));
			}
			catch (InterruptedException e)
			{
				return;
			}
			System.err.println(w.tag + ": not finished after " + timeout + "s (a hang?)");
			System.out.println(w.summary());
			w.report();
			System.out.flush();
			Runtime.getRuntime().halt(2);
		});
		watchdog.setDaemon(true);
		watchdog.start();
		w.run();
		watchdog.interrupt();
		System.out.println(w.summary());
		if (!w.failures.isEmpty())
		{
			System.err.println(w.tag + ": " + w.failures.size() + " mismatch(es):");
			w.report();
			System.exit(1);
		}
		System.exit(0);
	}
}
