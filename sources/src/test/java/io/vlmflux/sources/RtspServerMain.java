package io.vlmflux.sources;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * A real RTSP server (libgstrtspserver-1.0 through FFM) for tests, run as a separate process so a test can kill it
 * mid-stream: {@code RtspServerMain PORT MOUNT LAUNCH}. Prints {@code READY} once it listens.
 */
public final class RtspServerMain {
    public static void main(String[] args) throws Throwable {
        Linker l = Linker.nativeLinker();
        Arena g = Arena.global();
        SymbolLookup libs = SymbolLookup.libraryLookup("libgstrtspserver-1.0.so.0", g)
                .or(SymbolLookup.libraryLookup("libgstreamer-1.0.so.0", g))
                .or(SymbolLookup.libraryLookup("libglib-2.0.so.0", g));
        MethodHandle gstInit = l.downcallHandle(libs.find("gst_init").orElseThrow(), FunctionDescriptor.ofVoid(ADDRESS, ADDRESS));
        MethodHandle serverNew = l.downcallHandle(libs.find("gst_rtsp_server_new").orElseThrow(), FunctionDescriptor.of(ADDRESS));
        MethodHandle setService = l.downcallHandle(libs.find("gst_rtsp_server_set_service").orElseThrow(), FunctionDescriptor.ofVoid(ADDRESS, ADDRESS));
        MethodHandle getMounts = l.downcallHandle(libs.find("gst_rtsp_server_get_mount_points").orElseThrow(), FunctionDescriptor.of(ADDRESS, ADDRESS));
        MethodHandle factoryNew = l.downcallHandle(libs.find("gst_rtsp_media_factory_new").orElseThrow(), FunctionDescriptor.of(ADDRESS));
        MethodHandle setLaunch = l.downcallHandle(libs.find("gst_rtsp_media_factory_set_launch").orElseThrow(), FunctionDescriptor.ofVoid(ADDRESS, ADDRESS));
        MethodHandle setShared = l.downcallHandle(libs.find("gst_rtsp_media_factory_set_shared").orElseThrow(), FunctionDescriptor.ofVoid(ADDRESS, JAVA_INT));
        MethodHandle addFactory = l.downcallHandle(libs.find("gst_rtsp_mount_points_add_factory").orElseThrow(), FunctionDescriptor.ofVoid(ADDRESS, ADDRESS, ADDRESS));
        MethodHandle attach = l.downcallHandle(libs.find("gst_rtsp_server_attach").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        MethodHandle loopNew = l.downcallHandle(libs.find("g_main_loop_new").orElseThrow(), FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT));
        MethodHandle loopRun = l.downcallHandle(libs.find("g_main_loop_run").orElseThrow(), FunctionDescriptor.ofVoid(ADDRESS));

        gstInit.invoke(MemorySegment.NULL, MemorySegment.NULL);
        MemorySegment server = (MemorySegment) serverNew.invoke();
        setService.invoke(server, g.allocateFrom(args[0]));
        MemorySegment mounts = (MemorySegment) getMounts.invoke(server);
        MemorySegment factory = (MemorySegment) factoryNew.invoke();
        setLaunch.invoke(factory, g.allocateFrom("( " + args[2] + " )"));
        setShared.invoke(factory, 1);
        addFactory.invoke(mounts, g.allocateFrom(args[1]), factory);
        int id = (int) attach.invoke(server, MemorySegment.NULL);
        if (id == 0) { System.out.println("FAILED to attach on port " + args[0]); System.exit(1); }
        MemorySegment loop = (MemorySegment) loopNew.invoke(MemorySegment.NULL, 0);
        System.out.println("READY");
        System.out.flush();
        loopRun.invoke(loop);
    }
}
